//! Bad input on HTTP/2 and TLS.
