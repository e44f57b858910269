"""Django settings: no database, no templates, no middleware (dwebsocket's decorators bring
their own)."""

SECRET_KEY = "pushlab-lab-only"  # nothing here is signed or stored
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = []
DATABASES = {}
MIDDLEWARE = []
ROOT_URLCONF = "pushlab_dws.urls"
WSGI_APPLICATION = "pushlab_dws.wsgi.application"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}
