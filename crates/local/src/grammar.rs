//! Constrained answers: OpenAI's `response_format` as a llama.cpp grammar (GBNF) that the
//! worker's sampler enforces token by token, so even a model that has never seen JSON writes
//! only text the grammar accepts. The schema is converted by llama.cpp's own
//! `json_schema_to_grammar` (its `common` library, compiled into llama-cpp-sys-2).

use serde::{Deserialize, Serialize};

/// What the answer must be.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "schema", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// JSON mode (`json_object`): any JSON object.
    JsonObject,
    /// Structured outputs (`json_schema`): JSON matching this schema.
    JsonSchema(serde_json::Value),
}

#[derive(Debug, thiserror::Error)]
#[error("its JSON schema cannot be expressed as a grammar for the offline model ({0})")]
pub struct GrammarError(String);

impl ResponseFormat {
    /// The GBNF grammar (root rule `root`) that accepts exactly the answers this format allows.
    pub fn grammar(&self) -> Result<String, GrammarError> {
        let schema = match self {
            ResponseFormat::JsonObject => serde_json::json!({ "type": "object" }),
            ResponseFormat::JsonSchema(s) => s.clone(),
        };
        llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| GrammarError(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_become_grammars_and_a_bad_schema_is_an_error() {
        let object = ResponseFormat::JsonObject.grammar().unwrap();
        assert!(object.contains("root ::="), "{object}");
        let schema = serde_json::json!({ "type": "object", "properties": { "ok": { "type": "boolean" } }, "required": ["ok"], "additionalProperties": false });
        let g = ResponseFormat::JsonSchema(schema).grammar().unwrap();
        assert!(g.contains("\"true\"") && g.contains("ok"), "{g}");
        // A reference to nothing cannot be converted: an error, never an unconstrained answer.
        assert!(ResponseFormat::JsonSchema(serde_json::json!({ "$ref": "#/definitions/missing" })).grammar().is_err());
    }
}
