//! Validation of the MCP (revision 2025-11-25) elicitation "form mode" schema subset.
//!
//! An elicitation request in form mode carries a `requestedSchema`: a flat JSON Schema
//! object whose properties are restricted to a handful of primitive kinds (string,
//! number, integer, boolean, single-select enum, multi-select enum). This module has two
//! entry points:
//!
//! * [`validate_schema`] checks that a `requestedSchema` stays inside that subset and is
//!   internally consistent (bounds in order, patterns that compile, defaults that satisfy
//!   their own property's constraints, ...).
//! * [`validate_content`] checks the `content` of an `accept` answer against a schema that
//!   already passed [`validate_schema`].
//!
//! Both report every problem they find as a list of [`FieldError`]s, each carrying an
//! RFC 6901 JSON pointer into the request body (`/requestedSchema/...` or `/content/...`).
//!
//! Notes on interpretation:
//!
//! * `integer` accepts any JSON number without a fractional part, including integral
//!   floats such as `3.0` or `1e2` (JSON Schema defines "integer" mathematically, not by
//!   lexical form). The same rule applies to `minimum`/`maximum` of an integer property and
//!   to the non-negative integer keywords (`minLength`, `maxLength`, `minItems`, `maxItems`).
//! * String lengths count Unicode scalar values (Rust `char`s).
//! * `pattern` is compiled with `regex_lite` and matched unanchored ("search" semantics).
//! * `default` is only checked against its property's constraints when the rest of that
//!   property's schema is valid; a bad array item in a default is reported at
//!   `.../default/<index>`, every other default problem at `.../default`.

use std::cmp::Ordering;
use std::collections::HashSet;

use regex_lite::{Regex, RegexBuilder};
use serde::Serialize;
use serde_json::{Map, Number, Value};

/// One problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// RFC 6901 JSON pointer into the request body, e.g. "/requestedSchema/properties/age/minimum" or "/content/age".
    pub pointer: String,
    /// Human-readable explanation.
    pub detail: String,
}

/// Maximum number of properties a schema may declare.
pub const MAX_PROPERTIES: usize = 50;

/// Maximum length, in characters, of a property name.
const MAX_PROPERTY_NAME_CHARS: usize = 64;

/// Upper bound on the compiled size of a `pattern` (schemas come from untrusted callers).
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Root of every pointer produced by [`validate_schema`].
const SCHEMA_ROOT: &str = "/requestedSchema";

/// Root of every pointer produced by [`validate_content`].
const CONTENT_ROOT: &str = "/content";

/// The `format` values allowed on string properties.
const FORMATS: [&str; 4] = ["email", "uri", "date", "date-time"];

/// Checks that `schema` (the value of the request's `requestedSchema` field) is inside the MCP form subset.
/// Pointers are rooted at "/requestedSchema". Returns every problem found (not just the first).
///
/// # Errors
///
/// Every [`FieldError`] found, when the schema is not an acceptable form schema.
pub fn validate_schema(schema: &Value) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    check_schema_root(schema, &mut errors);
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Checks an accept answer's `content` (the value of the body's `content` field) against a schema that already passed
/// validate_schema. Pointers are rooted at "/content" ("/content/<prop>", "/content/<prop>/<index>" for array items).
/// One entry per offending field (the first problem of each field is enough; report every field that has one).
///
/// # Errors
///
/// One [`FieldError`] per offending field (or a single one at "/content" when `content` is not an object).
pub fn validate_content(schema: &Value, content: &Value) -> Result<(), Vec<FieldError>> {
    let Some(content) = content.as_object() else {
        return Err(vec![field_error(
            CONTENT_ROOT,
            format!("must be an object, got {}", type_name(content)),
        )]);
    };
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);

    let mut errors = Vec::new();
    for (key, value) in content {
        let pointer = child(CONTENT_ROOT, key);
        match properties.get(key) {
            None => errors.push(field_error(
                pointer,
                "not a property of the requested schema",
            )),
            Some(property) => {
                let checked = Property::parse(property)
                    .map_err(|detail| field_error(&pointer, detail))
                    .and_then(|p| p.check(value, &pointer));
                if let Err(error) = checked {
                    errors.push(error);
                }
            }
        }
    }
    if let Some(required) = schema.get("required").and_then(Value::as_array) {
        for name in required.iter().filter_map(Value::as_str) {
            if !content.contains_key(name) {
                errors.push(field_error(child(CONTENT_ROOT, name), "required"));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

// ---------------------------------------------------------------------------------------
// Pointers and small helpers
// ---------------------------------------------------------------------------------------

/// Escapes one reference token per RFC 6901 (`~` → `~0`, `/` → `~1`).
fn escape_token(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}

/// The pointer to member `token` of the value at `base`.
fn child(base: &str, token: &str) -> String {
    format!("{base}/{}", escape_token(token))
}

/// The pointer to element `index` of the array at `base`.
fn index(base: &str, index: usize) -> String {
    format!("{base}/{index}")
}

fn field_error(pointer: impl Into<String>, detail: impl Into<String>) -> FieldError {
    FieldError {
        pointer: pointer.into(),
        detail: detail.into(),
    }
}

/// A short name for the JSON type of `value`, for messages.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as a non-negative integer (integral floats included).
fn as_non_negative_integer(value: &Value) -> Option<u64> {
    let number = value.as_number()?;
    if let Some(n) = number.as_u64() {
        return Some(n);
    }
    if number.is_i64() {
        return None; // negative
    }
    let f = number.as_f64()?;
    // 2^64 is exactly representable; every integral f64 below it fits in a u64.
    ((0.0..18_446_744_073_709_551_616.0).contains(&f) && f.fract() == 0.0).then_some(f as u64)
}

/// Whether `number` has no fractional part.
fn is_integral(number: &Number) -> bool {
    number.is_i64() || number.is_u64() || number.as_f64().is_some_and(|f| f.fract() == 0.0)
}

/// `number` as an exact integer, when it is stored as one.
fn as_exact_integer(number: &Number) -> Option<i128> {
    number
        .as_i64()
        .map(i128::from)
        .or_else(|| number.as_u64().map(i128::from))
}

/// Exact ordering of an integer against a finite float.
fn compare_integer_float(int: i128, float: f64) -> Option<Ordering> {
    const TWO_POW_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;
    if float.is_nan() {
        return None;
    }
    if float >= TWO_POW_127 {
        return Some(Ordering::Less);
    }
    if float < -TWO_POW_127 {
        return Some(Ordering::Greater);
    }
    let whole = float.trunc();
    // |whole| < 2^127 and integral, so the conversion is exact.
    let ordering = int.cmp(&(whole as i128));
    if ordering != Ordering::Equal {
        return Some(ordering);
    }
    0.0f64.partial_cmp(&(float - whole))
}

/// Exact numeric ordering of two JSON numbers (no precision loss for large integers).
fn compare_numbers(a: &Number, b: &Number) -> Option<Ordering> {
    match (as_exact_integer(a), as_exact_integer(b)) {
        (Some(x), Some(y)) => Some(x.cmp(&y)),
        (Some(x), None) => compare_integer_float(x, b.as_f64()?),
        (None, Some(y)) => compare_integer_float(y, a.as_f64()?).map(Ordering::reverse),
        (None, None) => a.as_f64()?.partial_cmp(&b.as_f64()?),
    }
}

fn compile_pattern(pattern: &str) -> Result<Regex, regex_lite::Error> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

// ---------------------------------------------------------------------------------------
// Schema validation
// ---------------------------------------------------------------------------------------

fn check_schema_root(schema: &Value, errors: &mut Vec<FieldError>) {
    let Some(root) = schema.as_object() else {
        errors.push(field_error(
            SCHEMA_ROOT,
            format!("must be an object, got {}", type_name(schema)),
        ));
        return;
    };

    for (key, value) in root {
        let pointer = child(SCHEMA_ROOT, key);
        match key.as_str() {
            "type" => {
                if value.as_str() != Some("object") {
                    errors.push(field_error(pointer, "must be \"object\""));
                }
            }
            "title" | "description" | "$schema" => {
                if !value.is_string() {
                    errors.push(field_error(pointer, "must be a string"));
                }
            }
            "properties" | "required" => {} // checked below
            _ => errors.push(field_error(
                pointer,
                format!("keyword `{key}` is not allowed at the top level of a form schema"),
            )),
        }
    }
    if !root.contains_key("type") {
        errors.push(field_error(child(SCHEMA_ROOT, "type"), "required"));
    }

    let properties_pointer = child(SCHEMA_ROOT, "properties");
    let properties = match root.get("properties") {
        None => {
            errors.push(field_error(properties_pointer, "required"));
            None
        }
        Some(Value::Object(properties)) => {
            if properties.is_empty() {
                errors.push(field_error(
                    &properties_pointer,
                    "must declare at least one property",
                ));
            } else if properties.len() > MAX_PROPERTIES {
                errors.push(field_error(
                    &properties_pointer,
                    format!(
                        "declares {} properties; at most {MAX_PROPERTIES} are allowed",
                        properties.len()
                    ),
                ));
            }
            for (name, property) in properties {
                let pointer = child(&properties_pointer, name);
                if name.is_empty() {
                    errors.push(field_error(&pointer, "property names must not be empty"));
                } else if name.chars().count() > MAX_PROPERTY_NAME_CHARS {
                    errors.push(field_error(
                        &pointer,
                        format!(
                            "property names must be at most {MAX_PROPERTY_NAME_CHARS} characters"
                        ),
                    ));
                }
                check_property(property, &pointer, errors);
            }
            Some(properties)
        }
        Some(other) => {
            errors.push(field_error(
                properties_pointer,
                format!("must be an object, got {}", type_name(other)),
            ));
            None
        }
    };

    if let Some(required) = root.get("required") {
        check_required(required, properties, errors);
    }
}

fn check_required(
    required: &Value,
    properties: Option<&Map<String, Value>>,
    errors: &mut Vec<FieldError>,
) {
    let pointer = child(SCHEMA_ROOT, "required");
    let Some(items) = required.as_array() else {
        errors.push(field_error(pointer, "must be an array of property names"));
        return;
    };
    let mut seen = HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let item_pointer = index(&pointer, i);
        let Some(name) = item.as_str() else {
            errors.push(field_error(item_pointer, "must be a string"));
            continue;
        };
        if !seen.insert(name) {
            errors.push(field_error(
                item_pointer,
                format!("duplicate entry \"{name}\""),
            ));
        } else if properties.is_some_and(|p| !p.contains_key(name)) {
            errors.push(field_error(
                item_pointer,
                format!("\"{name}\" is not a declared property"),
            ));
        }
    }
}

/// The kind of a property, as determined by its `type` and enum keywords.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KindTag {
    String,
    Number,
    Integer,
    Boolean,
    SingleSelect,
    MultiSelect,
}

impl KindTag {
    /// Classifies a property object, or explains why its `type` is unacceptable.
    fn of(property: &Map<String, Value>) -> Result<KindTag, String> {
        let Some(ty) = property.get("type") else {
            return Err("required".into());
        };
        match ty.as_str() {
            Some("string") if property.contains_key("enum") || property.contains_key("oneOf") => {
                Ok(KindTag::SingleSelect)
            }
            Some("string") => Ok(KindTag::String),
            Some("number") => Ok(KindTag::Number),
            Some("integer") => Ok(KindTag::Integer),
            Some("boolean") => Ok(KindTag::Boolean),
            Some("array") => Ok(KindTag::MultiSelect),
            _ => Err(format!(
                "must be one of \"string\", \"number\", \"integer\", \"boolean\", \"array\" (got {ty})"
            )),
        }
    }

    fn describe(self) -> &'static str {
        match self {
            KindTag::String => "string",
            KindTag::Number => "number",
            KindTag::Integer => "integer",
            KindTag::Boolean => "boolean",
            KindTag::SingleSelect => "single-select enum",
            KindTag::MultiSelect => "multi-select array",
        }
    }

    /// The kind-specific keywords (beyond `type`, `title`, `description`, `default`).
    fn keywords(self) -> &'static [&'static str] {
        match self {
            KindTag::String => &["minLength", "maxLength", "pattern", "format"],
            KindTag::Number | KindTag::Integer => &["minimum", "maximum"],
            KindTag::Boolean => &[],
            KindTag::SingleSelect => &["enum", "enumNames", "oneOf"],
            KindTag::MultiSelect => &["items", "minItems", "maxItems"],
        }
    }
}

fn check_property(property: &Value, pointer: &str, errors: &mut Vec<FieldError>) {
    let Some(property) = property.as_object() else {
        errors.push(field_error(
            pointer,
            format!(
                "a property schema must be an object, got {}",
                type_name(property)
            ),
        ));
        return;
    };
    let kind = match KindTag::of(property) {
        Ok(kind) => kind,
        Err(detail) => {
            errors.push(field_error(child(pointer, "type"), detail));
            return;
        }
    };
    let errors_before = errors.len();

    for (key, value) in property {
        let key_pointer = child(pointer, key);
        match key.as_str() {
            "type" | "default" => {}
            "title" | "description" => {
                if !value.is_string() {
                    errors.push(field_error(key_pointer, "must be a string"));
                }
            }
            k if kind.keywords().contains(&k) => {}
            "minLength" | "maxLength" | "pattern" | "format" if kind == KindTag::SingleSelect => {
                errors.push(field_error(
                    key_pointer,
                    format!("`{key}` is not allowed on an enum (single-select) property"),
                ));
            }
            "enumNames" if kind == KindTag::String => {
                errors.push(field_error(
                    key_pointer,
                    "`enumNames` is only allowed together with `enum`",
                ));
            }
            _ => errors.push(field_error(
                key_pointer,
                format!(
                    "keyword `{key}` is not allowed on a {} property",
                    kind.describe()
                ),
            )),
        }
    }

    match kind {
        KindTag::String => check_string_keywords(property, pointer, errors),
        KindTag::Number | KindTag::Integer => {
            check_number_keywords(property, pointer, kind == KindTag::Integer, errors);
        }
        KindTag::Boolean => {}
        KindTag::SingleSelect => check_single_select_keywords(property, pointer, errors),
        KindTag::MultiSelect => check_multi_select_keywords(property, pointer, errors),
    }

    // The default can only be judged against constraints that are themselves sound.
    if errors.len() == errors_before
        && let Some(default) = property.get("default")
    {
        let default_pointer = child(pointer, "default");
        let checked = Property::from_object(property)
            .map_err(|detail| field_error(&default_pointer, detail))
            .and_then(|p| p.check(default, &default_pointer));
        if let Err(error) = checked {
            errors.push(error);
        }
    }
}

/// Checks an optional non-negative integer keyword; returns its value when valid.
fn non_negative_keyword(
    property: &Map<String, Value>,
    key: &str,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<u64> {
    let value = property.get(key)?;
    let parsed = as_non_negative_integer(value);
    if parsed.is_none() {
        errors.push(field_error(
            child(pointer, key),
            "must be a non-negative integer",
        ));
    }
    parsed
}

fn check_string_keywords(
    property: &Map<String, Value>,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) {
    let min = non_negative_keyword(property, "minLength", pointer, errors);
    let max = non_negative_keyword(property, "maxLength", pointer, errors);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        errors.push(field_error(
            child(pointer, "minLength"),
            format!("minLength ({min}) is greater than maxLength ({max})"),
        ));
    }
    if let Some(pattern) = property.get("pattern") {
        let pattern_pointer = child(pointer, "pattern");
        match pattern.as_str() {
            None => errors.push(field_error(pattern_pointer, "must be a string")),
            Some(source) => {
                if let Err(error) = compile_pattern(source) {
                    errors.push(field_error(
                        pattern_pointer,
                        format!("not a valid regular expression: {error}"),
                    ));
                }
            }
        }
    }
    if let Some(format) = property.get("format")
        && !format.as_str().is_some_and(|f| FORMATS.contains(&f))
    {
        errors.push(field_error(
            child(pointer, "format"),
            "must be one of \"email\", \"uri\", \"date\", \"date-time\"",
        ));
    }
}

fn check_number_keywords(
    property: &Map<String, Value>,
    pointer: &str,
    integer: bool,
    errors: &mut Vec<FieldError>,
) {
    let mut bound = |key: &str| -> Option<&Number> {
        let value = property.get(key)?;
        let key_pointer = child(pointer, key);
        match value.as_number() {
            None => {
                errors.push(field_error(key_pointer, "must be a number"));
                None
            }
            Some(n) if integer && !is_integral(n) => {
                errors.push(field_error(key_pointer, "must be an integer"));
                None
            }
            Some(n) => Some(n),
        }
    };
    let min = bound("minimum");
    let max = bound("maximum");
    if let (Some(min), Some(max)) = (min, max)
        && compare_numbers(min, max) == Some(Ordering::Greater)
    {
        errors.push(field_error(
            child(pointer, "minimum"),
            format!("minimum ({min}) is greater than maximum ({max})"),
        ));
    }
}

/// Checks a non-empty array of unique strings at `pointer`; returns how many entries it has.
fn check_string_options(
    value: &Value,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<usize> {
    let Some(items) = value.as_array() else {
        errors.push(field_error(pointer, "must be a non-empty array of strings"));
        return None;
    };
    if items.is_empty() {
        errors.push(field_error(pointer, "must not be empty"));
        return None;
    }
    let mut seen = HashSet::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            None => {
                errors.push(field_error(index(pointer, i), "must be a string"));
                ok = false;
            }
            Some(s) if !seen.insert(s) => {
                errors.push(field_error(
                    index(pointer, i),
                    format!("duplicate value \"{s}\""),
                ));
                ok = false;
            }
            Some(_) => {}
        }
    }
    ok.then_some(items.len())
}

/// Checks a non-empty array of `{const, title}` objects with unique consts; returns its length.
fn check_titled_options(
    value: &Value,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) -> Option<usize> {
    let Some(items) = value.as_array() else {
        errors.push(field_error(
            pointer,
            "must be a non-empty array of {const, title} objects",
        ));
        return None;
    };
    if items.is_empty() {
        errors.push(field_error(pointer, "must not be empty"));
        return None;
    }
    let mut seen = HashSet::new();
    let mut ok = true;
    for (i, item) in items.iter().enumerate() {
        let item_pointer = index(pointer, i);
        let Some(option) = item.as_object() else {
            errors.push(field_error(
                item_pointer,
                "must be an object with `const` and `title`",
            ));
            ok = false;
            continue;
        };
        for key in option.keys() {
            if key != "const" && key != "title" {
                errors.push(field_error(
                    child(&item_pointer, key),
                    format!(
                        "keyword `{key}` is not allowed in an option (only `const` and `title`)"
                    ),
                ));
                ok = false;
            }
        }
        match option.get("const") {
            None => {
                errors.push(field_error(child(&item_pointer, "const"), "required"));
                ok = false;
            }
            Some(Value::String(s)) => {
                if !seen.insert(s.as_str()) {
                    errors.push(field_error(
                        child(&item_pointer, "const"),
                        format!("duplicate value \"{s}\""),
                    ));
                    ok = false;
                }
            }
            Some(_) => {
                errors.push(field_error(
                    child(&item_pointer, "const"),
                    "must be a string",
                ));
                ok = false;
            }
        }
        match option.get("title") {
            None => {
                errors.push(field_error(child(&item_pointer, "title"), "required"));
                ok = false;
            }
            Some(Value::String(_)) => {}
            Some(_) => {
                errors.push(field_error(
                    child(&item_pointer, "title"),
                    "must be a string",
                ));
                ok = false;
            }
        }
    }
    ok.then_some(items.len())
}

fn check_single_select_keywords(
    property: &Map<String, Value>,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) {
    match (property.get("enum"), property.get("oneOf")) {
        (Some(_), Some(_)) => {
            errors.push(field_error(
                child(pointer, "oneOf"),
                "`enum` and `oneOf` cannot be combined",
            ));
        }
        (Some(values), None) => {
            let count = check_string_options(values, &child(pointer, "enum"), errors);
            if let Some(names) = property.get("enumNames") {
                let names_pointer = child(pointer, "enumNames");
                match names.as_array() {
                    None => errors.push(field_error(names_pointer, "must be an array of strings")),
                    Some(names) => {
                        for (i, name) in names.iter().enumerate() {
                            if !name.is_string() {
                                errors.push(field_error(
                                    index(&names_pointer, i),
                                    "must be a string",
                                ));
                            }
                        }
                        if let Some(count) = count
                            && names.len() != count
                        {
                            errors.push(field_error(
                                names_pointer,
                                format!("has {} entries but `enum` has {count}", names.len()),
                            ));
                        }
                    }
                }
            }
        }
        (None, Some(options)) => {
            check_titled_options(options, &child(pointer, "oneOf"), errors);
            if property.contains_key("enumNames") {
                errors.push(field_error(
                    child(pointer, "enumNames"),
                    "`enumNames` is only allowed together with `enum`",
                ));
            }
        }
        (None, None) => {} // not reachable: the kind requires one of them
    }
}

fn check_multi_select_keywords(
    property: &Map<String, Value>,
    pointer: &str,
    errors: &mut Vec<FieldError>,
) {
    let items_pointer = child(pointer, "items");
    let option_count = match property.get("items") {
        None => {
            errors.push(field_error(&items_pointer, "required"));
            None
        }
        Some(items) => check_items(items, &items_pointer, errors),
    };
    let min = non_negative_keyword(property, "minItems", pointer, errors);
    let max = non_negative_keyword(property, "maxItems", pointer, errors);
    if let (Some(min), Some(max)) = (min, max)
        && min > max
    {
        errors.push(field_error(
            child(pointer, "minItems"),
            format!("minItems ({min}) is greater than maxItems ({max})"),
        ));
    } else if let (Some(min), Some(count)) = (min, option_count)
        && min > count as u64
    {
        errors.push(field_error(
            child(pointer, "minItems"),
            format!("minItems ({min}) exceeds the number of options ({count})"),
        ));
    }
}

/// Checks the `items` of a multi-select; returns the number of options when valid.
fn check_items(items: &Value, pointer: &str, errors: &mut Vec<FieldError>) -> Option<usize> {
    let Some(items) = items.as_object() else {
        errors.push(field_error(pointer, "must be an object"));
        return None;
    };
    for (key, value) in items {
        match key.as_str() {
            "enum" | "anyOf" => {}
            "type" => {
                if value.as_str() != Some("string") {
                    errors.push(field_error(child(pointer, "type"), "must be \"string\""));
                }
            }
            _ => errors.push(field_error(
                child(pointer, key),
                format!("keyword `{key}` is not allowed in multi-select `items`"),
            )),
        }
    }
    match (items.get("enum"), items.get("anyOf")) {
        (Some(_), Some(_)) => {
            errors.push(field_error(
                child(pointer, "anyOf"),
                "`enum` and `anyOf` cannot be combined",
            ));
            None
        }
        (Some(values), None) => {
            if !items.contains_key("type") {
                errors.push(field_error(child(pointer, "type"), "required"));
            }
            check_string_options(values, &child(pointer, "enum"), errors)
        }
        (None, Some(options)) => check_titled_options(options, &child(pointer, "anyOf"), errors),
        (None, None) => {
            errors.push(field_error(pointer, "must have either `enum` or `anyOf`"));
            None
        }
    }
}

// ---------------------------------------------------------------------------------------
// Content checking (also used for `default`)
// ---------------------------------------------------------------------------------------

/// A string `format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Email,
    Uri,
    Date,
    DateTime,
}

impl Format {
    fn parse(name: &str) -> Option<Format> {
        match name {
            "email" => Some(Format::Email),
            "uri" => Some(Format::Uri),
            "date" => Some(Format::Date),
            "date-time" => Some(Format::DateTime),
            _ => None,
        }
    }

    fn accepts(self, s: &str) -> bool {
        match self {
            Format::Email => is_email(s),
            Format::Uri => is_absolute_uri(s),
            Format::Date => is_full_date(s),
            Format::DateTime => is_date_time(s),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Format::Email => "email",
            Format::Uri => "uri",
            Format::Date => "date",
            Format::DateTime => "date-time",
        }
    }
}

/// The constraints of one property, ready to check values against.
#[derive(Debug)]
enum Property {
    String {
        min_length: Option<u64>,
        max_length: Option<u64>,
        pattern: Option<(String, Regex)>,
        format: Option<Format>,
    },
    Number {
        integer: bool,
        minimum: Option<Number>,
        maximum: Option<Number>,
    },
    Boolean,
    SingleSelect {
        options: Vec<String>,
    },
    MultiSelect {
        options: Vec<String>,
        min_items: Option<u64>,
        max_items: Option<u64>,
    },
}

/// Collects the `const` strings of a `[{const, title}, ...]` array.
fn titled_consts(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|options| {
            options
                .iter()
                .filter_map(|option| option.get("const").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Collects the strings of a plain string array.
fn plain_strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|values| {
            values
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// Detail reported when a property schema cannot be read (it did not pass [`validate_schema`]).
const INVALID_PROPERTY: &str = "the schema of this property is not valid";

impl Property {
    /// Reads a property schema that passed [`validate_schema`]; the error is the detail to report.
    fn parse(schema: &Value) -> Result<Property, String> {
        match schema.as_object() {
            Some(object) => Property::from_object(object),
            None => Err(INVALID_PROPERTY.into()),
        }
    }

    /// Reads a property schema object; the error is the detail to report.
    fn from_object(schema: &Map<String, Value>) -> Result<Property, String> {
        let invalid = || String::from(INVALID_PROPERTY);
        let kind = KindTag::of(schema).map_err(|_| invalid())?;
        let property = match kind {
            KindTag::String => Property::String {
                min_length: schema.get("minLength").and_then(as_non_negative_integer),
                max_length: schema.get("maxLength").and_then(as_non_negative_integer),
                pattern: match schema.get("pattern").and_then(Value::as_str) {
                    Some(source) => Some((
                        source.to_owned(),
                        compile_pattern(source).map_err(|_| invalid())?,
                    )),
                    None => None,
                },
                format: schema
                    .get("format")
                    .and_then(Value::as_str)
                    .and_then(Format::parse),
            },
            KindTag::Number | KindTag::Integer => Property::Number {
                integer: kind == KindTag::Integer,
                minimum: schema.get("minimum").and_then(Value::as_number).cloned(),
                maximum: schema.get("maximum").and_then(Value::as_number).cloned(),
            },
            KindTag::Boolean => Property::Boolean,
            KindTag::SingleSelect => Property::SingleSelect {
                options: if schema.contains_key("enum") {
                    plain_strings(schema.get("enum"))
                } else {
                    titled_consts(schema.get("oneOf"))
                },
            },
            KindTag::MultiSelect => {
                let items = schema.get("items");
                let options = match items.and_then(|i| i.get("enum")) {
                    Some(values) => plain_strings(Some(values)),
                    None => titled_consts(items.and_then(|i| i.get("anyOf"))),
                };
                Property::MultiSelect {
                    options,
                    min_items: schema.get("minItems").and_then(as_non_negative_integer),
                    max_items: schema.get("maxItems").and_then(as_non_negative_integer),
                }
            }
        };
        Ok(property)
    }

    /// Checks `value` against this property; reports the first problem found.
    fn check(&self, value: &Value, pointer: &str) -> Result<(), FieldError> {
        let fail = |detail: String| Err(field_error(pointer, detail));
        match self {
            Property::String {
                min_length,
                max_length,
                pattern,
                format,
            } => {
                let Some(s) = value.as_str() else {
                    return fail(format!("expected a string, got {}", type_name(value)));
                };
                let length = s.chars().count() as u64;
                if let Some(min) = min_length
                    && length < *min
                {
                    return fail(format!(
                        "must be at least {min} characters long (got {length})"
                    ));
                }
                if let Some(max) = max_length
                    && length > *max
                {
                    return fail(format!(
                        "must be at most {max} characters long (got {length})"
                    ));
                }
                if let Some((source, regex)) = pattern
                    && !regex.is_match(s)
                {
                    return fail(format!("does not match the pattern {source:?}"));
                }
                if let Some(format) = format
                    && !format.accepts(s)
                {
                    return fail(format!("is not a valid {}", format.name()));
                }
                Ok(())
            }
            Property::Number {
                integer,
                minimum,
                maximum,
            } => {
                let Some(n) = value.as_number() else {
                    let expected = if *integer { "an integer" } else { "a number" };
                    return fail(format!("expected {expected}, got {}", type_name(value)));
                };
                if *integer && !is_integral(n) {
                    return fail(format!("expected an integer, got {n}"));
                }
                if let Some(min) = minimum
                    && compare_numbers(n, min) == Some(Ordering::Less)
                {
                    return fail(format!("must be at least {min} (got {n})"));
                }
                if let Some(max) = maximum
                    && compare_numbers(n, max) == Some(Ordering::Greater)
                {
                    return fail(format!("must be at most {max} (got {n})"));
                }
                Ok(())
            }
            Property::Boolean => match value {
                Value::Bool(_) => Ok(()),
                other => fail(format!("expected a boolean, got {}", type_name(other))),
            },
            Property::SingleSelect { options } => {
                let Some(s) = value.as_str() else {
                    return fail(format!("expected a string, got {}", type_name(value)));
                };
                if options.iter().any(|o| o == s) {
                    Ok(())
                } else {
                    fail(format!("\"{s}\" is not one of the allowed values"))
                }
            }
            Property::MultiSelect {
                options,
                min_items,
                max_items,
            } => {
                let Some(items) = value.as_array() else {
                    return fail(format!(
                        "expected an array of strings, got {}",
                        type_name(value)
                    ));
                };
                let mut seen = HashSet::new();
                for (i, item) in items.iter().enumerate() {
                    let item_pointer = index(pointer, i);
                    let Some(s) = item.as_str() else {
                        return Err(field_error(
                            item_pointer,
                            format!("expected a string, got {}", type_name(item)),
                        ));
                    };
                    if !options.iter().any(|o| o == s) {
                        return Err(field_error(
                            item_pointer,
                            format!("\"{s}\" is not one of the allowed values"),
                        ));
                    }
                    if !seen.insert(s) {
                        return Err(field_error(
                            item_pointer,
                            format!("duplicate selection \"{s}\""),
                        ));
                    }
                }
                let count = items.len() as u64;
                if let Some(min) = min_items
                    && count < *min
                {
                    return fail(format!("must select at least {min} items (got {count})"));
                }
                if let Some(max) = max_items
                    && count > *max
                {
                    return fail(format!("must select at most {max} items (got {count})"));
                }
                Ok(())
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Formats
// ---------------------------------------------------------------------------------------

/// A pragmatic e-mail address check: `local@domain`, exactly one `@`, no whitespace or
/// control characters, a dotted domain of non-empty labels made of letters, digits and
/// inner hyphens, and a local part without leading, trailing or doubled dots.
fn is_email(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    if local.is_empty() || domain.is_empty() || domain.contains('@') {
        return false;
    }
    let local_ok = !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && !local.chars().any(|c| "\"(),:;<>[\\]".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

/// An absolute URI: an RFC 3986 scheme, `:`, and at least one more character; no
/// whitespace or control characters anywhere.
fn is_absolute_uri(s: &str) -> bool {
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return false;
    };
    let mut chars = scheme.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && !rest.is_empty()
}

fn is_leap_year(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Parses exactly `len` ASCII digits at the start of `s`.
fn digits(s: &[u8], len: usize) -> Option<u32> {
    let part = s.get(..len)?;
    part.iter().try_fold(0u32, |acc, &b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// RFC 3339 `full-date` (`YYYY-MM-DD`) naming a real calendar day.
fn is_full_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && full_date_prefix(b)
}

/// Whether `b` starts with a valid RFC 3339 `full-date` (10 bytes).
fn full_date_prefix(b: &[u8]) -> bool {
    let (Some(year), Some(month), Some(day)) = (
        digits(b, 4),
        b.get(5..).and_then(|r| digits(r, 2)),
        b.get(8..).and_then(|r| digits(r, 2)),
    ) else {
        return false;
    };
    b[4] == b'-'
        && b[7] == b'-'
        && (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
}

/// RFC 3339 `date-time`: `full-date` `T` `HH:MM:SS[.frac]` offset (`Z` or `±HH:MM`).
fn is_date_time(s: &str) -> bool {
    let b = s.as_bytes();
    if b.len() < 20 || !full_date_prefix(b) || !matches!(b[10], b'T' | b't') {
        return false;
    }
    let time = &b[11..];
    let (Some(hour), Some(minute), Some(second)) = (
        digits(time, 2),
        digits(&time[3..], 2),
        digits(&time[6..], 2),
    ) else {
        return false;
    };
    if time[2] != b':' || time[5] != b':' || hour > 23 || minute > 59 || second > 60 {
        return false;
    }
    let mut rest = &time[8..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 {
            return false;
        }
        rest = &fraction[count..];
    }
    match rest {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', offset @ ..] => {
            offset.len() == 5
                && offset[2] == b':'
                && digits(offset, 2).is_some_and(|h| h <= 23)
                && digits(&offset[3..], 2).is_some_and(|m| m <= 59)
        }
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema_with(property: Value) -> Value {
        let mut properties = Map::new();
        properties.insert("p".to_owned(), property);
        json!({ "type": "object", "properties": properties })
    }

    fn schema_errors(schema: &Value) -> Vec<FieldError> {
        validate_schema(schema).expect_err("schema should be rejected")
    }

    fn pointers(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.pointer.as_str()).collect()
    }

    /// Asserts the schema is rejected with exactly these pointers (in any order).
    #[track_caller]
    fn assert_schema_pointers(schema: &Value, expected: &[&str]) {
        let errors = schema_errors(schema);
        let mut got = pointers(&errors);
        got.sort_unstable();
        let mut want = expected.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "errors: {errors:#?}");
    }

    #[track_caller]
    fn assert_property_rejected(property: Value, pointer_suffix: &str) {
        let expected = format!("/requestedSchema/properties/p{pointer_suffix}");
        assert_schema_pointers(&schema_with(property), &[expected.as_str()]);
    }

    #[track_caller]
    fn assert_property_ok(property: Value) {
        let schema = schema_with(property);
        assert_eq!(validate_schema(&schema), Ok(()), "schema: {schema}");
    }

    /// Validates the schema `{p: property}` and then the content `{p: value}`.
    #[track_caller]
    fn check_single(property: Value, value: Value) -> (String, Result<(), Vec<FieldError>>) {
        let schema = schema_with(property);
        assert_eq!(validate_schema(&schema), Ok(()), "schema: {schema}");
        let label = format!("value {value} for schema {schema}");
        let mut content = Map::new();
        content.insert("p".to_owned(), value);
        (label, validate_content(&schema, &Value::Object(content)))
    }

    #[track_caller]
    fn assert_content_ok(property: Value, value: Value) {
        let (label, result) = check_single(property, value);
        assert_eq!(result, Ok(()), "{label}");
    }

    #[track_caller]
    fn assert_content_rejected(property: Value, value: Value, pointer: &str) {
        let (label, result) = check_single(property, value);
        let errors = result.expect_err(&label);
        assert_eq!(pointers(&errors), vec![pointer], "{label}: {errors:#?}");
    }

    fn full_schema() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "type": "object",
            "title": "Sign up",
            "description": "Tell us about yourself",
            "properties": {
                "name": { "type": "string", "title": "Name", "description": "Full name", "minLength": 1, "maxLength": 100, "default": "Ann" },
                "code": { "type": "string", "pattern": "^[A-Z]{3}$" },
                "email": { "type": "string", "format": "email" },
                "site": { "type": "string", "format": "uri" },
                "born": { "type": "string", "format": "date" },
                "at": { "type": "string", "format": "date-time" },
                "ratio": { "type": "number", "minimum": 0, "maximum": 1.5, "default": 0.5 },
                "age": { "type": "integer", "minimum": 0, "maximum": 150, "default": 30 },
                "ok": { "type": "boolean", "title": "OK?", "default": false },
                "color": { "type": "string", "enum": ["red", "green"], "enumNames": ["Red", "Green"], "default": "red" },
                "size": { "type": "string", "oneOf": [ { "const": "s", "title": "Small" }, { "const": "l", "title": "Large" } ] },
                "tags": { "type": "array", "items": { "type": "string", "enum": ["a", "b", "c"] }, "minItems": 1, "maxItems": 2, "default": ["a"] },
                "pets": { "type": "array", "items": { "anyOf": [ { "const": "cat", "title": "Cat" }, { "const": "dog", "title": "Dog" } ] } }
            },
            "required": ["name", "age"]
        })
    }

    // ----- schema: accepted -----

    #[test]
    fn full_schema_with_every_keyword_is_accepted() {
        assert_eq!(validate_schema(&full_schema()), Ok(()));
    }

    #[test]
    fn minimal_schema_is_accepted() {
        assert_eq!(
            validate_schema(&schema_with(json!({ "type": "boolean" }))),
            Ok(())
        );
    }

    #[test]
    fn every_string_keyword_is_accepted() {
        assert_property_ok(
            json!({ "type": "string", "title": "t", "description": "d", "default": "abc" }),
        );
        assert_property_ok(json!({ "type": "string", "minLength": 0 }));
        assert_property_ok(json!({ "type": "string", "maxLength": 0 }));
        assert_property_ok(json!({ "type": "string", "minLength": 2, "maxLength": 2 }));
        assert_property_ok(json!({ "type": "string", "minLength": 2.0 }));
        assert_property_ok(json!({ "type": "string", "pattern": "\\d+" }));
        for format in ["email", "uri", "date", "date-time"] {
            assert_property_ok(json!({ "type": "string", "format": format }));
        }
    }

    #[test]
    fn every_number_keyword_is_accepted() {
        assert_property_ok(
            json!({ "type": "number", "minimum": -1.5, "maximum": 2, "default": 0.25 }),
        );
        assert_property_ok(json!({ "type": "number", "minimum": 3, "maximum": 3 }));
        assert_property_ok(
            json!({ "type": "integer", "minimum": -5, "maximum": 5, "default": -5 }),
        );
        assert_property_ok(json!({ "type": "integer", "minimum": 1.0, "maximum": 1e2 }));
        assert_property_ok(json!({ "type": "integer", "maximum": u64::MAX }));
    }

    #[test]
    fn every_select_keyword_is_accepted() {
        assert_property_ok(json!({ "type": "string", "enum": ["x"] }));
        assert_property_ok(
            json!({ "type": "string", "enum": ["x", "y"], "enumNames": ["X", "Y"], "title": "t", "description": "d", "default": "y" }),
        );
        assert_property_ok(
            json!({ "type": "string", "oneOf": [{ "const": "x", "title": "X" }], "default": "x" }),
        );
        assert_property_ok(
            json!({ "type": "array", "items": { "type": "string", "enum": ["x"] } }),
        );
        assert_property_ok(
            json!({ "type": "array", "items": { "anyOf": [{ "const": "x", "title": "X" }] } }),
        );
        assert_property_ok(
            json!({ "type": "array", "items": { "type": "string", "anyOf": [{ "const": "x", "title": "X" }] } }),
        );
        assert_property_ok(
            json!({ "type": "array", "items": { "type": "string", "enum": ["x", "y"] }, "minItems": 2, "maxItems": 5, "default": ["y", "x"] }),
        );
        assert_property_ok(
            json!({ "type": "array", "items": { "type": "string", "enum": ["x"] }, "minItems": 0, "maxItems": 0, "default": [] }),
        );
    }

    // ----- schema: top level -----

    #[test]
    fn non_object_schema_is_rejected_at_root() {
        for schema in [json!(null), json!("object"), json!([]), json!(1)] {
            assert_schema_pointers(&schema, &["/requestedSchema"]);
        }
    }

    #[test]
    fn top_level_type_must_be_object_and_present() {
        assert_schema_pointers(
            &json!({ "properties": { "a": { "type": "boolean" } } }),
            &["/requestedSchema/type"],
        );
        assert_schema_pointers(
            &json!({ "type": "array", "properties": { "a": { "type": "boolean" } } }),
            &["/requestedSchema/type"],
        );
    }

    #[test]
    fn properties_are_required_and_must_be_an_object() {
        assert_schema_pointers(
            &json!({ "type": "object" }),
            &["/requestedSchema/properties"],
        );
        assert_schema_pointers(
            &json!({ "type": "object", "properties": [] }),
            &["/requestedSchema/properties"],
        );
        assert_schema_pointers(
            &json!({ "type": "object", "properties": {} }),
            &["/requestedSchema/properties"],
        );
    }

    #[test]
    fn top_level_strings_must_be_strings() {
        let schema = json!({ "type": "object", "title": 1, "description": [], "$schema": false, "properties": { "a": { "type": "boolean" } } });
        assert_schema_pointers(
            &schema,
            &[
                "/requestedSchema/title",
                "/requestedSchema/description",
                "/requestedSchema/$schema",
            ],
        );
    }

    #[test]
    fn unknown_top_level_keys_are_rejected() {
        let schema = json!({
            "type": "object",
            "properties": { "a": { "type": "boolean" } },
            "additionalProperties": false,
            "$defs": {},
            "a/b~c": 1
        });
        assert_schema_pointers(
            &schema,
            &[
                "/requestedSchema/additionalProperties",
                "/requestedSchema/$defs",
                "/requestedSchema/a~1b~0c",
            ],
        );
    }

    #[test]
    fn fifty_properties_pass_and_fifty_one_fail() {
        let make = |n: usize| {
            let properties: Map<String, Value> = (0..n)
                .map(|i| (format!("p{i}"), json!({ "type": "boolean" })))
                .collect();
            json!({ "type": "object", "properties": properties })
        };
        assert_eq!(validate_schema(&make(MAX_PROPERTIES)), Ok(()));
        assert_schema_pointers(&make(MAX_PROPERTIES + 1), &["/requestedSchema/properties"]);
    }

    #[test]
    fn property_names_are_checked() {
        let long = "x".repeat(65);
        let max = "é".repeat(64);
        let schema = json!({ "type": "object", "properties": {
            "": { "type": "boolean" },
            long.clone(): { "type": "boolean" },
            max: { "type": "boolean" },
        } });
        let long_pointer = format!("/requestedSchema/properties/{long}");
        assert_schema_pointers(
            &schema,
            &["/requestedSchema/properties/", long_pointer.as_str()],
        );
    }

    #[test]
    fn required_is_validated() {
        let base = |required: Value| json!({ "type": "object", "properties": { "a": { "type": "boolean" }, "b": { "type": "boolean" } }, "required": required });
        assert_eq!(validate_schema(&base(json!([]))), Ok(()));
        assert_eq!(validate_schema(&base(json!(["a", "b"]))), Ok(()));
        assert_schema_pointers(&base(json!("a")), &["/requestedSchema/required"]);
        assert_schema_pointers(&base(json!(["a", "a"])), &["/requestedSchema/required/1"]);
        assert_schema_pointers(&base(json!(["a", 1])), &["/requestedSchema/required/1"]);
        assert_schema_pointers(
            &base(json!(["c", "b", "d"])),
            &["/requestedSchema/required/0", "/requestedSchema/required/2"],
        );
    }

    #[test]
    fn every_problem_is_reported_not_just_the_first() {
        let schema = json!({
            "type": "object",
            "extra": 1,
            "properties": {
                "a": { "type": "object" },
                "b": { "type": "string", "minLength": -1 },
                "c": { "type": "integer", "minimum": 0.5 }
            },
            "required": ["zzz"]
        });
        assert_schema_pointers(
            &schema,
            &[
                "/requestedSchema/extra",
                "/requestedSchema/properties/a/type",
                "/requestedSchema/properties/b/minLength",
                "/requestedSchema/properties/c/minimum",
                "/requestedSchema/required/0",
            ],
        );
    }

    // ----- schema: property kinds -----

    #[test]
    fn property_must_be_an_object_with_a_known_type() {
        assert_property_rejected(json!(true), "");
        assert_property_rejected(json!("string"), "");
        assert_property_rejected(json!({}), "/type");
        assert_property_rejected(json!({ "enum": ["a"] }), "/type");
        assert_property_rejected(json!({ "type": "object", "properties": {} }), "/type");
        assert_property_rejected(json!({ "type": "null" }), "/type");
        assert_property_rejected(json!({ "type": ["string", "null"] }), "/type");
        assert_property_rejected(json!({ "type": 1 }), "/type");
        assert_property_rejected(json!({ "type": "number", "enum": ["a"] }), "/enum");
        assert_property_rejected(
            json!({ "type": "array", "enum": ["a"], "items": { "type": "string", "enum": ["a"] } }),
            "/enum",
        );
    }

    #[test]
    fn forbidden_keywords_are_rejected_at_their_pointer() {
        assert_property_rejected(json!({ "type": "string", "$ref": "#/x" }), "/$ref");
        assert_property_rejected(json!({ "type": "string", "properties": {} }), "/properties");
        assert_property_rejected(
            json!({ "type": "string", "items": { "type": "string" } }),
            "/items",
        );
        assert_property_rejected(json!({ "type": "string", "minimum": 1 }), "/minimum");
        assert_property_rejected(json!({ "type": "string", "const": "x" }), "/const");
        assert_property_rejected(
            json!({ "type": "string", "enumNames": ["x"] }),
            "/enumNames",
        );
        assert_property_rejected(json!({ "type": "number", "minLength": 1 }), "/minLength");
        assert_property_rejected(
            json!({ "type": "integer", "exclusiveMinimum": 1 }),
            "/exclusiveMinimum",
        );
        assert_property_rejected(json!({ "type": "integer", "multipleOf": 2 }), "/multipleOf");
        assert_property_rejected(json!({ "type": "boolean", "enum": [true] }), "/enum");
        assert_property_rejected(json!({ "type": "boolean", "format": "email" }), "/format");
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": ["a"] }, "uniqueItems": true }),
            "/uniqueItems",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": ["a"] }, "maxLength": 2 }),
            "/maxLength",
        );
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a"], "anyOf": [] }),
            "/anyOf",
        );
        assert_property_rejected(json!({ "type": "string", "allOf": [] }), "/allOf");
        assert_property_rejected(json!({ "type": "string", "a~b/c": 1 }), "/a~0b~1c");
    }

    #[test]
    fn title_and_description_must_be_strings() {
        assert_property_rejected(json!({ "type": "boolean", "title": 1 }), "/title");
        assert_property_rejected(
            json!({ "type": "boolean", "description": null }),
            "/description",
        );
    }

    #[test]
    fn string_bounds_are_validated() {
        assert_property_rejected(json!({ "type": "string", "minLength": -1 }), "/minLength");
        assert_property_rejected(json!({ "type": "string", "minLength": 1.5 }), "/minLength");
        assert_property_rejected(json!({ "type": "string", "maxLength": "3" }), "/maxLength");
        assert_property_rejected(
            json!({ "type": "string", "minLength": 3, "maxLength": 2 }),
            "/minLength",
        );
    }

    #[test]
    fn pattern_and_format_are_validated() {
        assert_property_rejected(json!({ "type": "string", "pattern": "(" }), "/pattern");
        assert_property_rejected(json!({ "type": "string", "pattern": "[a-" }), "/pattern");
        assert_property_rejected(json!({ "type": "string", "pattern": 5 }), "/pattern");
        assert_property_rejected(json!({ "type": "string", "format": "ipv4" }), "/format");
        assert_property_rejected(json!({ "type": "string", "format": "time" }), "/format");
        assert_property_rejected(json!({ "type": "string", "format": 1 }), "/format");
    }

    #[test]
    fn number_bounds_are_validated() {
        assert_property_rejected(json!({ "type": "number", "minimum": "1" }), "/minimum");
        assert_property_rejected(json!({ "type": "number", "maximum": null }), "/maximum");
        assert_property_rejected(
            json!({ "type": "number", "minimum": 2.5, "maximum": 2 }),
            "/minimum",
        );
        assert_property_rejected(json!({ "type": "integer", "minimum": 1.5 }), "/minimum");
        assert_property_rejected(json!({ "type": "integer", "maximum": 0.1 }), "/maximum");
        assert_property_rejected(
            json!({ "type": "integer", "minimum": 10, "maximum": 5 }),
            "/minimum",
        );
        // Exact comparison of large integers (they differ only below f64 precision).
        assert_property_rejected(
            json!({ "type": "integer", "minimum": 9_007_199_254_740_993_u64, "maximum": 9_007_199_254_740_992_u64 }),
            "/minimum",
        );
    }

    #[test]
    fn enum_single_select_is_validated() {
        assert_property_rejected(json!({ "type": "string", "enum": [] }), "/enum");
        assert_property_rejected(json!({ "type": "string", "enum": "a" }), "/enum");
        assert_property_rejected(json!({ "type": "string", "enum": ["a", 1] }), "/enum/1");
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a", "b", "a"] }),
            "/enum/2",
        );
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a", "b"], "enumNames": ["A"] }),
            "/enumNames",
        );
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a"], "enumNames": "A" }),
            "/enumNames",
        );
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a"], "enumNames": [1] }),
            "/enumNames/0",
        );
    }

    #[test]
    fn one_of_single_select_is_validated() {
        assert_property_rejected(json!({ "type": "string", "oneOf": [] }), "/oneOf");
        assert_property_rejected(json!({ "type": "string", "oneOf": {} }), "/oneOf");
        assert_property_rejected(json!({ "type": "string", "oneOf": ["a"] }), "/oneOf/0");
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "title": "A" }] }),
            "/oneOf/0/const",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": "a" }] }),
            "/oneOf/0/title",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": 1, "title": "A" }] }),
            "/oneOf/0/const",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": "a", "title": 1 }] }),
            "/oneOf/0/title",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": "a", "title": "A", "description": "x" }] }),
            "/oneOf/0/description",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": "a", "title": "A" }, { "const": "a", "title": "B" }] }),
            "/oneOf/1/const",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": "a", "title": "A" }], "enumNames": ["A"] }),
            "/enumNames",
        );
    }

    #[test]
    fn enum_and_one_of_cannot_be_combined() {
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a"], "oneOf": [{ "const": "a", "title": "A" }] }),
            "/oneOf",
        );
    }

    #[test]
    fn single_select_rejects_string_constraints() {
        for (key, value) in [
            ("minLength", json!(1)),
            ("maxLength", json!(3)),
            ("pattern", json!("a")),
            ("format", json!("email")),
        ] {
            let mut property = json!({ "type": "string", "enum": ["a"] });
            property[key] = value.clone();
            assert_property_rejected(property, &format!("/{key}"));
            let mut property =
                json!({ "type": "string", "oneOf": [{ "const": "a", "title": "A" }] });
            property[key] = value;
            assert_property_rejected(property, &format!("/{key}"));
        }
    }

    #[test]
    fn multi_select_items_are_validated() {
        assert_property_rejected(json!({ "type": "array" }), "/items");
        assert_property_rejected(json!({ "type": "array", "items": [] }), "/items");
        assert_property_rejected(json!({ "type": "array", "items": {} }), "/items");
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string" } }),
            "/items",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "enum": ["a"] } }),
            "/items/type",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "number", "enum": ["a"] } }),
            "/items/type",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": [] } }),
            "/items/enum",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": ["a", "a"] } }),
            "/items/enum/1",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": [1] } }),
            "/items/enum/0",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "anyOf": [] } }),
            "/items/anyOf",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "anyOf": [{ "const": "a" }] } }),
            "/items/anyOf/0/title",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "anyOf": [{ "const": "a", "title": "A" }, { "const": "a", "title": "A" }] } }),
            "/items/anyOf/1/const",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": ["a"], "anyOf": [{ "const": "a", "title": "A" }] } }),
            "/items/anyOf",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "type": "string", "enum": ["a"], "enumNames": ["A"] } }),
            "/items/enumNames",
        );
        assert_schema_pointers(
            &schema_with(
                json!({ "type": "array", "items": { "type": "object", "properties": {} } }),
            ),
            &[
                "/requestedSchema/properties/p/items",
                "/requestedSchema/properties/p/items/type",
                "/requestedSchema/properties/p/items/properties",
            ],
        );
    }

    #[test]
    fn multi_select_counts_are_validated() {
        let items = json!({ "type": "string", "enum": ["a", "b"] });
        assert_property_rejected(
            json!({ "type": "array", "items": items, "minItems": -1 }),
            "/minItems",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "maxItems": "2" }),
            "/maxItems",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "minItems": 2, "maxItems": 1 }),
            "/minItems",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "minItems": 3 }),
            "/minItems",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": { "anyOf": [{ "const": "a", "title": "A" }] }, "minItems": 2 }),
            "/minItems",
        );
        assert_property_ok(
            json!({ "type": "array", "items": items, "minItems": 2, "maxItems": 10 }),
        );
    }

    #[test]
    fn property_pointers_are_escaped() {
        let schema = json!({ "type": "object", "properties": { "a/b~c": { "type": "string", "minLength": "x" } } });
        assert_schema_pointers(&schema, &["/requestedSchema/properties/a~1b~0c/minLength"]);
    }

    // ----- schema: defaults -----

    #[test]
    fn defaults_that_violate_their_constraints_are_rejected() {
        assert_property_rejected(json!({ "type": "string", "default": 1 }), "/default");
        assert_property_rejected(json!({ "type": "string", "default": null }), "/default");
        assert_property_rejected(
            json!({ "type": "string", "minLength": 3, "default": "ab" }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "string", "maxLength": 1, "default": "ab" }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "string", "pattern": "^a", "default": "ba" }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "string", "format": "email", "default": "nope" }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "string", "format": "date", "default": "2023-02-29" }),
            "/default",
        );
        assert_property_rejected(json!({ "type": "number", "default": "1" }), "/default");
        assert_property_rejected(
            json!({ "type": "number", "minimum": 1, "default": 0.5 }),
            "/default",
        );
        assert_property_rejected(json!({ "type": "integer", "default": 1.5 }), "/default");
        assert_property_rejected(
            json!({ "type": "integer", "maximum": 3, "default": 4 }),
            "/default",
        );
        assert_property_rejected(json!({ "type": "boolean", "default": "true" }), "/default");
        assert_property_rejected(
            json!({ "type": "string", "enum": ["a"], "default": "b" }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "string", "oneOf": [{ "const": "a", "title": "A" }], "default": "A" }),
            "/default",
        );
        let items = json!({ "type": "string", "enum": ["a", "b"] });
        assert_property_rejected(
            json!({ "type": "array", "items": items, "default": "a" }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "default": ["c"] }),
            "/default/0",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "default": ["a", "a"] }),
            "/default/1",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "minItems": 1, "default": [] }),
            "/default",
        );
        assert_property_rejected(
            json!({ "type": "array", "items": items, "maxItems": 1, "default": ["a", "b"] }),
            "/default",
        );
    }

    #[test]
    fn valid_defaults_are_accepted() {
        assert_property_ok(
            json!({ "type": "string", "format": "date-time", "default": "2024-02-29T12:00:00Z" }),
        );
        assert_property_ok(json!({ "type": "integer", "minimum": 1, "default": 1.0 }));
        assert_property_ok(json!({ "type": "boolean", "default": true }));
    }

    #[test]
    fn default_is_not_checked_when_the_property_is_otherwise_invalid() {
        // Only the broken bound is reported, not a default judged against it.
        assert_property_rejected(
            json!({ "type": "string", "minLength": -1, "default": "" }),
            "/minLength",
        );
    }

    // ----- content -----

    #[test]
    fn content_must_be_an_object() {
        let schema = full_schema();
        for content in [json!(null), json!([]), json!("x"), json!(1)] {
            let errors = validate_content(&schema, &content).unwrap_err();
            assert_eq!(pointers(&errors), vec!["/content"]);
        }
    }

    #[test]
    fn full_content_is_accepted() {
        let content = json!({
            "name": "Zoë",
            "code": "ABC",
            "email": "zoe@example.org",
            "site": "https://example.org/x?y=1#z",
            "born": "2000-02-29",
            "at": "2024-06-01T08:30:00.123+02:00",
            "ratio": 1.5,
            "age": 42,
            "ok": true,
            "color": "green",
            "size": "l",
            "tags": ["c", "a"],
            "pets": ["dog"]
        });
        assert_eq!(validate_content(&full_schema(), &content), Ok(()));
        assert_eq!(
            validate_content(&full_schema(), &json!({ "name": "A", "age": 0 })),
            Ok(())
        );
    }

    #[test]
    fn unknown_and_missing_fields_are_reported() {
        let errors =
            validate_content(&full_schema(), &json!({ "nick": "x", "a/b": 1 })).unwrap_err();
        let mut got = pointers(&errors);
        got.sort_unstable();
        assert_eq!(
            got,
            vec![
                "/content/age",
                "/content/a~1b",
                "/content/name",
                "/content/nick"
            ]
        );
        assert!(
            errors
                .iter()
                .any(|e| e.pointer == "/content/age" && e.detail == "required")
        );
    }

    #[test]
    fn every_bad_field_is_reported_once() {
        let content = json!({ "name": "", "age": "old", "ok": null, "tags": ["a", "a", "z"], "color": "blue" });
        let errors = validate_content(&full_schema(), &content).unwrap_err();
        let mut got = pointers(&errors);
        got.sort_unstable();
        assert_eq!(
            got,
            vec![
                "/content/age",
                "/content/color",
                "/content/name",
                "/content/ok",
                "/content/tags/1"
            ]
        );
    }

    #[test]
    fn content_pointers_are_escaped() {
        let schema = json!({ "type": "object", "properties": { "~/": { "type": "boolean" } }, "required": ["~/"] });
        assert_eq!(validate_schema(&schema), Ok(()));
        assert_eq!(
            pointers(&validate_content(&schema, &json!({})).unwrap_err()),
            vec!["/content/~0~1"]
        );
        assert_eq!(
            pointers(&validate_content(&schema, &json!({ "~/": 1 })).unwrap_err()),
            vec!["/content/~0~1"]
        );
        assert_eq!(validate_content(&schema, &json!({ "~/": false })), Ok(()));
    }

    #[test]
    fn null_is_never_valid() {
        for property in [
            json!({ "type": "string" }),
            json!({ "type": "number" }),
            json!({ "type": "integer" }),
            json!({ "type": "boolean" }),
            json!({ "type": "string", "enum": ["a"] }),
            json!({ "type": "array", "items": { "type": "string", "enum": ["a"] } }),
        ] {
            assert_content_rejected(property, json!(null), "/content/p");
        }
    }

    #[test]
    fn string_content_rules() {
        let p = json!({ "type": "string", "minLength": 2, "maxLength": 3 });
        assert_content_ok(p.clone(), json!("ab"));
        assert_content_ok(p.clone(), json!("abc"));
        // Lengths count Unicode scalar values, not bytes.
        assert_content_ok(p.clone(), json!("ééé"));
        assert_content_ok(p.clone(), json!("😀😀"));
        assert_content_rejected(p.clone(), json!("a"), "/content/p");
        assert_content_rejected(p.clone(), json!("abcd"), "/content/p");
        assert_content_rejected(p.clone(), json!(12), "/content/p");
        assert_content_rejected(p, json!(["ab"]), "/content/p");
    }

    #[test]
    fn pattern_is_unanchored_search() {
        let p = json!({ "type": "string", "pattern": "[0-9]{3}" });
        assert_content_ok(p.clone(), json!("abc123def"));
        assert_content_rejected(p, json!("ab12cd"), "/content/p");
        let anchored = json!({ "type": "string", "pattern": "^[a-z]+$" });
        assert_content_ok(anchored.clone(), json!("abc"));
        assert_content_rejected(anchored, json!("abc1"), "/content/p");
    }

    #[test]
    fn email_format() {
        let p = json!({ "type": "string", "format": "email" });
        for ok in [
            "a@b.co",
            "first.last+tag@sub.example.org",
            "x@xn--bcher-kva.de",
            "Ünï@exämple.de",
        ] {
            assert_content_ok(p.clone(), json!(ok));
        }
        for bad in [
            "",
            "plain",
            "@b.co",
            "a@",
            "a@b",
            "a@@b.co",
            "a@b@c.co",
            "a b@c.co",
            "a@b .co",
            "a@b.co ",
            "a@.b.co",
            "a@b..co",
            "a@b.co.",
            "a@-b.co",
            ".a@b.co",
            "a.@b.co",
            "a..b@c.co",
            "a@b_c.co",
            "\"a\"@b.co",
            "a\n@b.co",
        ] {
            assert_content_rejected(p.clone(), json!(bad), "/content/p");
        }
    }

    #[test]
    fn uri_format() {
        let p = json!({ "type": "string", "format": "uri" });
        for ok in [
            "https://example.org",
            "mailto:a@b.co",
            "urn:isbn:0451450523",
            "a+b-c.d:x",
            "file:///tmp/x",
            "Z:1",
        ] {
            assert_content_ok(p.clone(), json!(ok));
        }
        for bad in [
            "",
            "example.org",
            "/relative/path",
            "//host/x",
            "http:",
            "1http://x",
            "ht tp://x",
            "http://a b",
            ":x",
            "h_t://x",
            "-a:x",
        ] {
            assert_content_rejected(p.clone(), json!(bad), "/content/p");
        }
    }

    #[test]
    fn date_format_with_leap_years() {
        let p = json!({ "type": "string", "format": "date" });
        for ok in [
            "2024-02-29",
            "2000-02-29",
            "1999-12-31",
            "2023-01-01",
            "0000-01-01",
            "2023-04-30",
            "1600-02-29",
        ] {
            assert_content_ok(p.clone(), json!(ok));
        }
        for bad in [
            "2023-02-29",
            "1900-02-29",
            "2100-02-29",
            "2024-02-30",
            "2023-04-31",
            "2023-13-01",
            "2023-00-10",
            "2023-01-00",
            "2023-01-32",
            "2023-1-01",
            "23-01-01",
            "2023/01/01",
            "2023-01-01T00:00:00Z",
            " 2023-01-01",
            "２０２３-01-01",
            "",
        ] {
            assert_content_rejected(p.clone(), json!(bad), "/content/p");
        }
    }

    #[test]
    fn date_time_format_with_offsets() {
        let p = json!({ "type": "string", "format": "date-time" });
        for ok in [
            "2024-02-29T23:59:59Z",
            "2024-02-29t00:00:00z",
            "2023-06-30T23:59:60Z",
            "2023-06-01T12:00:00.5Z",
            "2023-06-01T12:00:00.123456789+05:30",
            "2023-06-01T12:00:00-08:00",
            "2023-06-01T12:00:00+00:00",
            "2023-06-01T12:00:00-23:59",
        ] {
            assert_content_ok(p.clone(), json!(ok));
        }
        for bad in [
            "2023-06-01",
            "2023-06-01T12:00:00",
            "2023-06-01 12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2023-06-01T24:00:00Z",
            "2023-06-01T12:60:00Z",
            "2023-06-01T12:00:61Z",
            "2023-06-01T12:00Z",
            "2023-06-01T12:00:00.Z",
            "2023-06-01T12:00:00+0530",
            "2023-06-01T12:00:00+24:00",
            "2023-06-01T12:00:00+05:60",
            "2023-06-01T12:00:00+05",
            "2023-06-01T12:00:00ZZ",
            "2023-06-01T12:00:00Z ",
            "2023-06-01T1:00:00Z",
            "2023-06-01T12-00-00Z",
            "2023-06-01T12:00:00+05:30:00",
        ] {
            assert_content_rejected(p.clone(), json!(bad), "/content/p");
        }
    }

    #[test]
    fn number_content_rules() {
        let p = json!({ "type": "number", "minimum": -1, "maximum": 2.5 });
        for ok in [json!(-1), json!(0), json!(2.5), json!(1e-3), json!(-1.0)] {
            assert_content_ok(p.clone(), ok);
        }
        assert_content_rejected(p.clone(), json!(-1.0001), "/content/p");
        assert_content_rejected(p.clone(), json!(2.5000001), "/content/p");
        assert_content_rejected(p.clone(), json!(3), "/content/p");
        assert_content_rejected(p.clone(), json!("1"), "/content/p");
        assert_content_rejected(p, json!(true), "/content/p");
    }

    #[test]
    fn integer_content_rules_accept_integral_floats() {
        let p = json!({ "type": "integer", "minimum": 1, "maximum": 10 });
        for ok in [json!(1), json!(10), json!(3.0), json!(1e1)] {
            assert_content_ok(p.clone(), ok);
        }
        assert_content_rejected(p.clone(), json!(3.5), "/content/p");
        assert_content_rejected(p.clone(), json!(0), "/content/p");
        assert_content_rejected(p.clone(), json!(11), "/content/p");
        assert_content_rejected(p.clone(), json!(10.5), "/content/p");
        assert_content_rejected(p, json!("5"), "/content/p");
        assert_content_rejected(json!({ "type": "integer" }), json!(0.1), "/content/p");
        let big = json!({ "type": "integer", "maximum": 9_007_199_254_740_992_u64 });
        assert_content_ok(big.clone(), json!(9_007_199_254_740_992_u64));
        assert_content_rejected(big, json!(9_007_199_254_740_993_u64), "/content/p");
        let negative = json!({ "type": "integer", "minimum": i64::MIN, "maximum": -1 });
        assert_content_ok(negative.clone(), json!(i64::MIN));
        assert_content_rejected(negative, json!(u64::MAX), "/content/p");
    }

    #[test]
    fn boolean_content_rules() {
        let p = json!({ "type": "boolean" });
        assert_content_ok(p.clone(), json!(true));
        assert_content_ok(p.clone(), json!(false));
        assert_content_rejected(p.clone(), json!("true"), "/content/p");
        assert_content_rejected(p, json!(1), "/content/p");
    }

    #[test]
    fn single_select_content_rules() {
        let plain = json!({ "type": "string", "enum": ["a", "b"], "enumNames": ["A", "B"] });
        assert_content_ok(plain.clone(), json!("b"));
        assert_content_rejected(plain.clone(), json!("B"), "/content/p");
        assert_content_rejected(plain.clone(), json!(["a"]), "/content/p");
        assert_content_rejected(plain, json!(0), "/content/p");
        let titled = json!({ "type": "string", "oneOf": [{ "const": "a", "title": "Apple" }] });
        assert_content_ok(titled.clone(), json!("a"));
        assert_content_rejected(titled.clone(), json!("Apple"), "/content/p");
        assert_content_rejected(titled, json!(""), "/content/p");
    }

    #[test]
    fn multi_select_content_rules() {
        let plain = json!({ "type": "array", "items": { "type": "string", "enum": ["a", "b", "c"] }, "minItems": 1, "maxItems": 2 });
        assert_content_ok(plain.clone(), json!(["a"]));
        assert_content_ok(plain.clone(), json!(["c", "b"]));
        assert_content_rejected(plain.clone(), json!([]), "/content/p");
        assert_content_rejected(plain.clone(), json!(["a", "b", "c"]), "/content/p");
        assert_content_rejected(plain.clone(), json!(["a", "x"]), "/content/p/1");
        assert_content_rejected(plain.clone(), json!(["a", "a"]), "/content/p/1");
        assert_content_rejected(plain.clone(), json!([1]), "/content/p/0");
        assert_content_rejected(plain.clone(), json!([null]), "/content/p/0");
        assert_content_rejected(plain.clone(), json!("a"), "/content/p");
        assert_content_rejected(plain, json!({ "0": "a" }), "/content/p");
        let titled = json!({ "type": "array", "items": { "anyOf": [{ "const": "x", "title": "X" }, { "const": "y", "title": "Y" }] } });
        assert_content_ok(titled.clone(), json!([]));
        assert_content_ok(titled.clone(), json!(["y", "x"]));
        assert_content_rejected(titled.clone(), json!(["X"]), "/content/p/0");
        assert_content_rejected(titled, json!(["x", "y", "x"]), "/content/p/2");
    }

    #[test]
    fn optional_fields_may_be_omitted() {
        let schema = json!({ "type": "object", "properties": { "a": { "type": "string" }, "b": { "type": "integer" } } });
        assert_eq!(validate_content(&schema, &json!({})), Ok(()));
        assert_eq!(validate_content(&schema, &json!({ "b": 2 })), Ok(()));
    }

    #[test]
    fn field_error_serializes_as_pointer_and_detail() {
        let error = field_error("/content/a", "required");
        assert_eq!(
            serde_json::to_value(&error).unwrap(),
            json!({ "pointer": "/content/a", "detail": "required" })
        );
    }

    #[test]
    fn number_comparison_is_exact() {
        let n = |v: Value| v.as_number().unwrap().clone();
        assert_eq!(
            compare_numbers(&n(json!(1)), &n(json!(1.0))),
            Some(Ordering::Equal)
        );
        assert_eq!(
            compare_numbers(&n(json!(1)), &n(json!(1.5))),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_numbers(&n(json!(-1)), &n(json!(-1.5))),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_numbers(&n(json!(-2.5)), &n(json!(-2))),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_numbers(
                &n(json!(9_007_199_254_740_993_u64)),
                &n(json!(9_007_199_254_740_992.0))
            ),
            Some(Ordering::Greater)
        );
        assert_eq!(
            compare_numbers(&n(json!(u64::MAX)), &n(json!(1e300))),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_numbers(&n(json!(i64::MIN)), &n(json!(-1e300))),
            Some(Ordering::Greater)
        );
    }
}
