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
    /// The GBNF grammar (root rule `root`) that accepts exactly the answers this format allows;
    /// a schema with a constraint the grammar could not hold is an error naming it.
    pub fn grammar(&self) -> Result<String, GrammarError> {
        if let ResponseFormat::JsonSchema(schema) = self {
            if let Some(why) = unenforced(schema, "#") {
                return Err(GrammarError(why));
            }
        }
        self.grammar_as_converted()
    }

    /// The grammar as llama.cpp converts the schema, which drops some constraints without a word
    /// (see [`unenforced`]): for a tool call's arguments, which the model writes unheld under
    /// `tool_choice` `"auto"` anyway.
    pub(crate) fn grammar_as_converted(&self) -> Result<String, GrammarError> {
        let schema = match self {
            ResponseFormat::JsonObject => serde_json::json!({ "type": "object" }),
            ResponseFormat::JsonSchema(s) => s.clone(),
        };
        llama_cpp_2::json_schema_to_grammar(&schema.to_string()).map_err(|e| GrammarError(e.to_string()))
    }
}

/// Keywords llama.cpp's converter reads without a word but does not put in the grammar, so an
/// answer could break them (its `format`s are date, time, date-time and uuid).
const IGNORED: [&str; 17] = [
    "multipleOf",
    "uniqueItems",
    "not",
    "if",
    "then",
    "else",
    "minProperties",
    "maxProperties",
    "patternProperties",
    "propertyNames",
    "dependentRequired",
    "dependentSchemas",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedProperties",
    "unevaluatedItems",
];
const FORMATS: [&str; 9] = ["date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"];
const BOUNDS: [&str; 4] = ["minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"];

/// The first constraint of `schema` (at JSON pointer `at`) that the grammar would not hold the
/// answer to, in words: the converter drops these silently, and an answer that breaks the schema
/// the client asked for must be refused, not sent.
fn unenforced(schema: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    let Value::Object(o) = schema else { return None };
    let says = |what: String| Some(format!("{what} at {at}"));
    if let Some(k) = IGNORED.iter().find(|k| o.contains_key(**k)) {
        return says(format!("it uses `{k}`"));
    }
    // Bounds hold only for integers (a `number` or an untyped schema ignores them).
    let types: Vec<&str> = match o.get("type") {
        Some(Value::String(t)) => vec![t],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let ref_or_alternatives = ["$ref", "anyOf", "oneOf", "const", "enum"].iter().any(|k| o.contains_key(*k));
    if !ref_or_alternatives {
        if let Some(k) = BOUNDS.iter().find(|k| o.contains_key(**k)) {
            if !types.contains(&"integer") || types.contains(&"number") {
                return says(format!("it bounds a number with `{k}` (the grammar bounds only integers)"));
            }
        }
        // A format is a string's (OpenAPI's `int32` on a number is only a note).
        match o.get("format").and_then(Value::as_str) {
            Some(f) if !FORMATS.contains(&f) && (types.is_empty() || types.contains(&"string")) => return says(format!("it asks for the string format {f:?}")),
            _ => {}
        }
        // One of pattern, format and length is used, in that order; the rest is dropped.
        let string_rules: Vec<&str> = ["pattern", "format", "minLength", "maxLength"].into_iter().filter(|k| o.contains_key(*k)).collect();
        let lengths_only = string_rules.iter().all(|k| k.ends_with("Length"));
        if string_rules.len() > 1 && !lengths_only {
            return says(format!("it combines {}", string_rules.join(" and ")));
        }
        if let Some(p) = o.get("pattern").and_then(Value::as_str) {
            // An unanchored pattern (a match anywhere in the string) becomes any string.
            if !(p.starts_with('^') && p.ends_with('$')) {
                return says(format!("its pattern {p:?} is not anchored with ^ and $"));
            }
            // So does one with regex syntax the converter lacks (lookarounds, `\d`, …): its
            // grammar is then the rule for any string.
            let alone = llama_cpp_2::json_schema_to_grammar(&serde_json::json!({ "type": "string", "pattern": p }).to_string());
            if alone.is_ok_and(|g| g.lines().any(|l| l == "root ::= string")) {
                return says(format!("its pattern {p:?} uses regex syntax the grammar lacks"));
            }
        }
    }
    let mut children: Vec<(String, &Value)> = Vec::new();
    for key in ["properties", "$defs", "definitions"] {
        if let Some(Value::Object(m)) = o.get(key) {
            children.extend(m.iter().map(|(name, s)| (format!("{at}/{key}/{name}"), s)));
        }
    }
    for key in ["items", "prefixItems", "anyOf", "oneOf", "allOf"] {
        match o.get(key) {
            Some(Value::Array(list)) => children.extend(list.iter().enumerate().map(|(i, s)| (format!("{at}/{key}/{i}"), s))),
            Some(s) => children.push((format!("{at}/{key}"), s)),
            None => {}
        }
    }
    if let Some(s) = o.get("additionalProperties") {
        children.push((format!("{at}/additionalProperties"), s));
    }
    children.into_iter().find_map(|(path, s)| unenforced(s, &path))
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

    /// What llama.cpp's converter would drop without a word is an error naming it, so the
    /// offline model never answers with JSON that breaks the client's schema.
    #[test]
    fn constraints_the_grammar_cannot_hold_are_errors_not_dropped() {
        use serde_json::json;
        let object = |prop: serde_json::Value| json!({ "type": "object", "properties": { "v": prop }, "required": ["v"], "additionalProperties": false });
        for (prop, says) in [
            (json!({ "type": "number", "maximum": 1 }), "`maximum`"),
            (json!({ "type": ["number", "null"], "minimum": 0 }), "`minimum`"),
            (json!({ "type": "integer", "multipleOf": 5 }), "`multipleOf`"),
            (json!({ "type": "string", "format": "email" }), "\"email\""),
            (json!({ "type": "string", "pattern": "[A-Z]{3}" }), "not anchored"),
            // Pydantic's pattern for a Decimal (a lookahead).
            (json!({ "type": "string", "pattern": "^(?!^[-+.]*$)[+-]?0*\\d*\\.?\\d*$" }), "regex syntax"),
            (json!({ "type": "string", "pattern": "^\\d{3}$" }), "regex syntax"),
            (json!({ "type": "string", "pattern": "^[a-z]+$", "maxLength": 4 }), "pattern and maxLength"),
            (json!({ "type": "array", "items": { "type": "string" }, "uniqueItems": true }), "`uniqueItems`"),
            (json!({ "type": "array", "items": { "type": "number", "exclusiveMinimum": 0 } }), "#/properties/v/items"),
            (json!({ "anyOf": [{ "type": "string" }, { "not": { "type": "null" } }] }), "#/properties/v/anyOf/1"),
        ] {
            let err = ResponseFormat::JsonSchema(object(prop.clone())).grammar().expect_err(&prop.to_string()).to_string();
            assert!(err.contains(says), "{prop}: {err}");
        }
        // Pydantic's schema with $defs: the bound inside a definition counts too.
        let defs = json!({ "$defs": { "M": { "type": "object", "properties": { "score": { "type": "number", "maximum": 1 } } } }, "$ref": "#/$defs/M" });
        assert!(ResponseFormat::JsonSchema(defs).grammar().unwrap_err().to_string().contains("#/$defs/M/properties/score"));
        // What the grammar holds stays a grammar: integer bounds, the formats it knows, lengths,
        // anchored patterns, item counts, and a property that is merely named like a keyword.
        for prop in [
            json!({ "type": "integer", "minimum": 1, "exclusiveMaximum": 9 }),
            json!({ "type": ["integer", "null"], "maximum": 3 }),
            json!({ "type": "string", "format": "date-time" }),
            json!({ "type": "string", "minLength": 1, "maxLength": 4 }),
            json!({ "type": "string", "pattern": "^[a-z]{1,8}$" }),
            json!({ "type": "string", "pattern": "^[0-9]{3}-[A-Z]+$" }),
            json!({ "type": "array", "items": { "type": "boolean" }, "minItems": 1, "maxItems": 2 }),
            json!({ "type": "integer", "format": "int32" }),
            json!({ "type": "object", "properties": { "format": { "type": "string" }, "not": { "type": "integer" } } }),
        ] {
            assert!(ResponseFormat::JsonSchema(object(prop.clone())).grammar().is_ok(), "{prop}");
        }
    }
}
