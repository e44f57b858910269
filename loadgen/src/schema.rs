//! The JSON Schema (draft 2020-12) of result files, generated from the Rust types with
//! `schemars` so it cannot drift from them. The committed copy is
//! `loadgen/schema/result.schema.json`; a test fails when it differs from this, and
//! `pushlab-loadgen schema > loadgen/schema/result.schema.json` regenerates it.

use pushlab_proto::result::RunResult;

/// The schema of [`RunResult`] as JSON.
pub fn result_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunResult)).expect("a schema is JSON")
}

/// The schema, pretty-printed with a final newline (the committed file's form).
pub fn result_schema_text() -> String {
    let mut s = serde_json::to_string_pretty(&result_schema()).expect("a schema is JSON");
    s.push('\n');
    s
}
