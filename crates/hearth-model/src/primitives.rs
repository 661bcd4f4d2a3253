//! Validation of FHIR R4 primitive values in their JSON representation.
//!
//! The rules follow the regular expressions of the R4 (4.0.1) data type
//! definitions (https://hl7.org/fhir/R4/datatypes.html), plus what the regexes
//! cannot express: calendar validity of dates, the 32-bit range of integers,
//! padding of base64, and the JSON rules that strings are never empty and
//! that numbers and booleans are JSON numbers and booleans, not strings.
//! Parsers are hand-written; they are small and give precise messages.

use serde_json::Value;

use crate::limits;

/// Checks that `value` is a valid JSON representation of the FHIR primitive
/// type `type_code` (e.g. `"date"`, `"positiveInt"`). The error says what is
/// wrong, e.g. `'2020-02-30' is not a valid date (day 30 does not exist in
/// 2020-02, which has 29 days)`.
pub fn check(type_code: &str, value: &Value) -> Result<(), String> {
    match type_code {
        "boolean" => match value {
            Value::Bool(_) => Ok(()),
            _ => Err(wrong_json(type_code, "a JSON boolean", value)),
        },
        "integer" | "positiveInt" | "unsignedInt" => check_integer(type_code, value),
        "decimal" => match value {
            Value::Number(n) if n.to_string().len() > limits::MAX_DECIMAL_CHARS => Err(invalid(
                &n.to_string(),
                "decimal",
                Some(format!(
                    "longer than {} characters",
                    limits::MAX_DECIMAL_CHARS
                )),
            )),
            // Searches compare decimals as doubles.
            Value::Number(n) if n.as_f64().is_none_or(|f| !f.is_finite()) => Err(invalid(
                &n.to_string(),
                "decimal",
                Some("beyond the range of a double (about 1.8e308)".into()),
            )),
            Value::Number(n) if is_json_number(&n.to_string()) => Ok(()),
            Value::Number(n) => Err(invalid(&n.to_string(), "decimal", None)),
            _ => Err(wrong_json(type_code, "a JSON number", value)),
        },
        _ => {
            let Value::String(s) = value else {
                return Err(wrong_json(type_code, "a JSON string", value));
            };
            if s.is_empty() {
                return Err(format!(
                    "empty string is not a valid {type_code} (omit the element instead)"
                ));
            }
            if let Some(c) = s
                .chars()
                .find(|&c| c < ' ' && !matches!(c, '\t' | '\n' | '\r'))
            {
                // Strings SHALL NOT contain characters below U+0020 except
                // TAB, CR and LF; none of the other types allow them either.
                return Err(invalid(
                    s,
                    type_code,
                    Some(format!("contains control character U+{:04X}", c as u32)),
                ));
            }
            check_string(type_code, s).map_err(|reason| invalid(s, type_code, reason))
        }
    }
}

/// Checks a non-empty string without control characters against the lexical
/// rules of a string-based type. The error is an optional detail.
fn check_string(type_code: &str, s: &str) -> Result<(), Option<String>> {
    // Strings SHALL NOT exceed 1 MB (1,048,576 characters); nor does any
    // other primitive but base64Binary and xhtml, which only the body's size
    // bounds. The byte length bounds the character count, so count only if
    // needed.
    let long = s.len() > limits::MAX_STRING_BYTES
        && !matches!(type_code, "base64Binary" | "xhtml")
        && s.chars().count() > limits::MAX_STRING_BYTES;
    if long {
        return Err(Some("longer than 1,048,576 characters".into()));
    }
    match type_code {
        "string" | "markdown" => Ok(()),
        "xhtml" => crate::xhtml::check(s).map_err(Some),
        "code" => check_code(s),
        "id" => {
            let ok = s.len() <= 64
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
            ok.then_some(())
                .ok_or_else(|| Some("must be 1-64 characters of A-Z, a-z, 0-9, '-' and '.'".into()))
        }
        "uri" | "url" | "canonical" if s.chars().any(is_space) => {
            Err(Some("contains whitespace".into()))
        }
        "uri" | "url" | "canonical" => Ok(()),
        "oid" => check_oid(s).ok_or_else(|| {
            Some("expected urn:oid: followed by a dotted number such as 1.2.3".into())
        }),
        "uuid" => check_uuid(s).ok_or_else(|| {
            Some("expected urn:uuid: followed by lowercase hex in the form 8-4-4-4-12".into())
        }),
        "base64Binary" => check_base64(s).map_err(Some),
        "date" => parse_date_time(s, Form::Date).map_err(Some),
        "dateTime" => parse_date_time(s, Form::DateTime).map_err(Some),
        "instant" => parse_date_time(s, Form::Instant).map_err(Some),
        "time" => {
            let mut c = Cursor::new(s);
            parse_time(&mut c).and_then(|()| c.end()).map_err(Some)
        }
        other => Err(Some(format!("'{other}' is not a FHIR primitive type"))),
    }
}

/// Whitespace as `\s` in the spec's (Java) regexes.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// `[^\s]+(\s[^\s]+)*`: no leading, trailing or repeated whitespace.
fn check_code(s: &str) -> Result<(), Option<String>> {
    let bad = s.starts_with(is_space)
        || s.ends_with(is_space)
        || s.chars()
            .zip(s.chars().skip(1))
            .any(|(a, b)| is_space(a) && is_space(b));
    if bad {
        return Err(Some(
            "leading, trailing or consecutive whitespace is not allowed".into(),
        ));
    }
    Ok(())
}

/// `urn:oid:[0-2](\.(0|[1-9][0-9]*))+`
fn check_oid(s: &str) -> Option<()> {
    let rest = s.strip_prefix("urn:oid:")?;
    let mut arcs = rest.split('.');
    let first = arcs.next()?;
    if !matches!(first, "0" | "1" | "2") {
        return None;
    }
    let mut count = 0;
    for arc in arcs {
        let digits = !arc.is_empty() && arc.bytes().all(|b| b.is_ascii_digit());
        if !digits || (arc.len() > 1 && arc.starts_with('0')) {
            return None;
        }
        count += 1;
    }
    (count > 0).then_some(())
}

/// `urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`
/// (lowercase only, as R4's regex has it).
fn check_uuid(s: &str) -> Option<()> {
    let rest = s.strip_prefix("urn:uuid:")?;
    let groups: Vec<&str> = rest.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == lens.len()
        && groups.iter().zip(lens).all(|(g, n)| {
            g.len() == n
                && g.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        });
    ok.then_some(())
}

/// `(\s*([0-9a-zA-Z\+/=]){4}\s*)+`: groups of four base64 characters, with
/// whitespace allowed only between groups; `=` padding only at the very end.
fn check_base64(s: &str) -> Result<(), String> {
    let mut in_group = 0; // characters of the current group seen so far
    let mut padding = 0; // '=' seen so far
    for c in s.chars() {
        if is_space(c) {
            if in_group != 0 {
                return Err("whitespace inside a group of four characters".into());
            }
            continue;
        }
        match c {
            '=' => padding += 1,
            'A'..='Z' | 'a'..='z' | '0'..='9' | '+' | '/' if padding == 0 => {}
            '+' | '/' | 'A'..='Z' | 'a'..='z' | '0'..='9' => {
                return Err("'=' padding is only allowed at the end".into())
            }
            _ => return Err(format!("'{c}' is not a base64 character")),
        }
        in_group = (in_group + 1) % 4;
    }
    if in_group != 0 {
        return Err("length is not a multiple of four".into());
    }
    if padding > 2 {
        return Err("more than two '=' padding characters".into());
    }
    // An all-whitespace string has no groups, but the regex needs one.
    if !s.chars().any(|c| !is_space(c)) {
        return Err("no base64 content".into());
    }
    Ok(())
}

fn check_integer(type_code: &str, value: &Value) -> Result<(), String> {
    let Value::Number(n) = value else {
        return Err(wrong_json(type_code, "a JSON number", value));
    };
    // With arbitrary_precision the text is exactly what was sent, so `1.0`
    // and `1e2` are seen as such and rejected.
    let text = n.to_string();
    let digits = text.strip_prefix('-').unwrap_or(&text);
    let lexical = !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'));
    if !lexical {
        return Err(invalid(&text, type_code, Some("not a whole number".into())));
    }
    let (low, range) = match type_code {
        "positiveInt" => (1, "1..2147483647"),
        "unsignedInt" => (0, "0..2147483647"),
        _ => (i64::from(i32::MIN), "-2147483648..2147483647"),
    };
    // Digits beyond i64 fail to parse and are out of range all the same; the
    // unsigned types also reject "-0" (their regexes have no sign).
    match text.parse::<i64>() {
        Ok(v)
            if (low..=i64::from(i32::MAX)).contains(&v) && !(low >= 0 && text.starts_with('-')) =>
        {
            Ok(())
        }
        _ => Err(invalid(
            &text,
            type_code,
            Some(format!("out of range {range}")),
        )),
    }
}

/// JSON number grammar, which is also FHIR's decimal regex:
/// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
fn is_json_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i - start
    };
    let int_start = i;
    let n = digits(&mut i);
    if n == 0 || (n > 1 && b[int_start] == b'0') {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Form {
    Date,
    DateTime,
    Instant,
}

/// Parses date, dateTime and instant:
/// `YYYY(-MM(-DD(Thh:mm:ss(.f+)?(Z|(+|-)hh:mm))?)?)?`, where a time needs a
/// full date and a time zone, a date is only allowed without a time for
/// date/dateTime, and an instant needs everything (fraction optional).
fn parse_date_time(s: &str, form: Form) -> Result<(), String> {
    let mut c = Cursor::new(s);
    let year = c.number(4, "year (YYYY)")?;
    if year == 0 {
        return Err("year 0000 does not exist".into());
    }
    let full_date = if c.eat('-') {
        let month = c.number(2, "month (MM)")?;
        if !(1..=12).contains(&month) {
            return Err(format!("month {month:02} is not 01-12"));
        }
        if c.eat('-') {
            let day = c.number(2, "day (DD)")?;
            let max = days_in_month(year, month);
            if day == 0 || day > max {
                return Err(format!(
                    "day {day:02} does not exist in {year:04}-{month:02}, which has {max} days"
                ));
            }
            true
        } else {
            false
        }
    } else {
        false
    };
    if c.at_end() {
        return match form {
            Form::Instant => Err("an instant needs a date, a time and a time zone".into()),
            Form::DateTime | Form::Date => Ok(()),
        };
    }
    if form == Form::Date {
        return Err("a date has no time; expected YYYY, YYYY-MM or YYYY-MM-DD".into());
    }
    if !full_date || !c.eat('T') {
        return Err("expected YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm:ss+zz:zz".into());
    }
    parse_time(&mut c)?;
    if c.at_end() {
        return Err("a time zone (Z or +hh:mm/-hh:mm) is required when a time is given".into());
    }
    if !c.eat('Z') {
        if !(c.eat('+') || c.eat('-')) {
            return Err("expected a time zone: Z, +hh:mm or -hh:mm".into());
        }
        let h = c.number(2, "time zone hours")?;
        c.expect(':', "':' in the time zone")?;
        let m = c.number(2, "time zone minutes")?;
        // Offsets run from -14:00 to +14:00; -00:00 is allowed.
        if m > 59 || h > 14 || (h == 14 && m != 0) {
            return Err(format!(
                "time zone offset {h:02}:{m:02} is out of range (max 14:00)"
            ));
        }
    }
    c.end()
}

/// `hh:mm:ss(.f+)?`; hours 00-23 (24:00 is not allowed), seconds up to 60 for
/// leap seconds.
fn parse_time(c: &mut Cursor) -> Result<(), String> {
    let h = c.number(2, "hour (hh)")?;
    c.expect(':', "':' after the hour")?;
    let m = c.number(2, "minutes (mm)")?;
    c.expect(':', "':' after the minutes (seconds are required)")?;
    let sec = c.number(2, "seconds (ss)")?;
    if h > 23 {
        return Err(format!("hour {h:02} is not 00-23"));
    }
    if m > 59 {
        return Err(format!("minute {m:02} is not 00-59"));
    }
    if sec > 60 {
        return Err(format!("second {sec:02} is not 00-60"));
    }
    if c.eat('.') && c.digits() == 0 {
        return Err("expected digits after the decimal point of the seconds".into());
    }
    Ok(())
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Byte cursor for the date/time parsers (all their syntax is ASCII).
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Cursor<'a> {
    fn new(s: &'a str) -> Self {
        Cursor {
            s: s.as_bytes(),
            i: 0,
        }
    }

    fn at_end(&self) -> bool {
        self.i == self.s.len()
    }

    fn end(&self) -> Result<(), String> {
        match self.at_end() {
            true => Ok(()),
            false => Err(format!(
                "unexpected '{}' at position {}",
                String::from_utf8_lossy(&self.s[self.i..])
                    .chars()
                    .next()
                    .unwrap_or('?'),
                self.i + 1
            )),
        }
    }

    fn eat(&mut self, b: char) -> bool {
        let hit = self.s.get(self.i) == Some(&(b as u8));
        self.i += usize::from(hit);
        hit
    }

    fn expect(&mut self, b: char, what: &str) -> Result<(), String> {
        self.eat(b)
            .then_some(())
            .ok_or_else(|| format!("expected {what}"))
    }

    /// Exactly `n` digits as a number.
    fn number(&mut self, n: usize, what: &str) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.i..self.i + n)
            .filter(|d| d.iter().all(u8::is_ascii_digit));
        let digits = digits.ok_or_else(|| format!("expected {n} digits for the {what}"))?;
        self.i += n;
        Ok(digits.iter().fold(0, |v, d| v * 10 + u32::from(d - b'0')))
    }

    /// Skips any number of digits, returning how many.
    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.s.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }
}

fn invalid(s: &str, type_code: &str, reason: Option<String>) -> String {
    // Quote at most 100 characters: values can be megabytes long.
    let shown: String = s.chars().take(100).collect();
    let ellipsis = if shown.len() < s.len() { "..." } else { "" };
    match reason {
        Some(r) => format!("'{shown}{ellipsis}' is not a valid {type_code} ({r})"),
        None => format!("'{shown}{ellipsis}' is not a valid {type_code}"),
    }
}

fn wrong_json(type_code: &str, expected: &str, value: &Value) -> String {
    let found = match value {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", Value::String(s.chars().take(100).collect())),
        Value::Array(_) => "an array".to_owned(),
        Value::Object(_) => "an object".to_owned(),
    };
    format!("a {type_code} must be {expected}, found {found}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ok(ty: &str, v: Value) {
        assert_eq!(check(ty, &v), Ok(()), "{ty} {v}");
    }

    fn err(ty: &str, v: Value) -> String {
        check(ty, &v).expect_err(&format!("{ty} {v} should be invalid"))
    }

    fn num(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn booleans() {
        ok("boolean", json!(true));
        ok("boolean", json!(false));
        assert_eq!(
            err("boolean", json!("true")),
            "a boolean must be a JSON boolean, found string \"true\""
        );
        err("boolean", json!(1));
        err("boolean", Value::Null);
    }

    #[test]
    fn integers() {
        for v in ["0", "-0", "1", "-1", "2147483647", "-2147483648"] {
            ok("integer", num(v));
        }
        for v in [
            "2147483648",
            "-2147483649",
            "99999999999999999999",
            "1.0",
            "1e2",
            "1E0",
            "0.5",
        ] {
            err("integer", num(v));
        }
        assert!(err("integer", num("1.0")).contains("'1.0' is not a valid integer"));
        err("integer", json!("1"));
        err("integer", json!(true));

        ok("positiveInt", num("1"));
        ok("positiveInt", num("2147483647"));
        err("positiveInt", num("0"));
        err("positiveInt", num("-1"));
        err("positiveInt", num("2147483648"));

        ok("unsignedInt", num("0"));
        ok("unsignedInt", num("2147483647"));
        err("unsignedInt", num("-1"));
        err("unsignedInt", num("-0"));
        assert!(err("unsignedInt", num("-5")).contains("out of range 0..2147483647"));
    }

    #[test]
    fn decimals() {
        for v in [
            "0",
            "-0",
            "1.50",
            "0.0000001",
            "1e10",
            "-1.5E-3",
            "123456789012345678901234567890.1",
        ] {
            ok("decimal", num(v));
        }
        err("decimal", json!("1.5"));
        // Beyond a double, or longer than any real measurement.
        let number = |text: &str| Value::Number(text.parse().unwrap());
        ok("decimal", number("1.7e308"));
        assert!(err("decimal", number("1e999999")).contains("range of a double"));
        assert!(err("decimal", number("-2e308")).contains("range of a double"));
        ok("decimal", number(&format!("0.{}", "1".repeat(60))));
        assert!(err("decimal", number(&format!("0.{}", "1".repeat(70)))).contains("longer than"));
        err("decimal", Value::Null);
        assert!(is_json_number("1.0e+5"));
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.5.2", "NaN", "1 ",
        ] {
            assert!(!is_json_number(bad), "{bad}");
        }
    }

    #[test]
    fn strings() {
        ok("string", json!("hello"));
        ok("string", json!(" "));
        ok("string", json!("tab\there\r\nnewline"));
        ok("string", json!("ünïcödé ✓"));
        assert_eq!(
            err("string", json!("")),
            "empty string is not a valid string (omit the element instead)"
        );
        assert!(err("string", json!("bell\u{7}")).contains("control character U+0007"));
        err("string", json!("a\u{0}b"));
        err("string", json!(12));
        let max = limits::MAX_STRING_BYTES;
        ok("string", Value::String("x".repeat(max)));
        err("string", Value::String("x".repeat(max + 1)));
        // Characters, not bytes, count.
        ok("string", Value::String("é".repeat(max)));
        err("markdown", Value::String("x".repeat(max + 1)));
        err("uri", Value::String("x".repeat(max + 1)));
        // base64Binary is bounded by the body only.
        ok("base64Binary", Value::String("QUFB".repeat(max / 2)));
        // Long values are quoted only in part.
        let msg = err("string", Value::String(format!("{}\u{1}", "y".repeat(500))));
        assert!(msg.len() < 200, "{msg}");
        ok("markdown", json!("# Title\n\n* item"));
        err("markdown", json!(""));
        ok(
            "xhtml",
            json!("<div xmlns=\"http://www.w3.org/1999/xhtml\">x</div>"),
        );
    }

    #[test]
    fn codes_and_ids() {
        for v in ["final", "a b", "a\tb", "http://x", "1"] {
            ok("code", json!(v));
        }
        for v in [" a", "a ", "a  b", "a \tb", "\t", " "] {
            assert!(err("code", json!(v)).contains("whitespace"), "{v:?}");
        }
        err("code", json!(""));

        for v in ["a", "example", "A-1.b", &"x".repeat(64)] {
            ok("id", json!(v));
        }
        for v in [&"x".repeat(65) as &str, "a_b", "a b", "a/b", "é"] {
            err("id", json!(v));
        }
        err("id", json!(""));
    }

    #[test]
    fn uris() {
        for ty in ["uri", "url", "canonical"] {
            ok(
                ty,
                json!("http://hl7.org/fhir/StructureDefinition/Patient|4.0.1"),
            );
            ok(ty, json!("#local"));
            ok(ty, json!("urn:uuid:1"));
            err(ty, json!("http://a b"));
            err(ty, json!("http://a\tb"));
            err(ty, json!(""));
        }
        ok("oid", json!("urn:oid:2.16.840.1.113883"));
        ok("oid", json!("urn:oid:1.0"));
        for v in [
            "urn:oid:3.1",
            "urn:oid:1",
            "urn:oid:1.01",
            "urn:oid:1.",
            "urn:oid:1..2",
            "2.16.840",
            "urn:oid:1.a",
        ] {
            err("oid", json!(v));
        }
        ok(
            "uuid",
            json!("urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7"),
        );
        for v in [
            "53fefa32-fcbb-4ff8-8a92-55ee120877b7",
            "urn:uuid:53FEFA32-FCBB-4FF8-8A92-55EE120877B7",
            "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b",
            "urn:uuid:53fefa32fcbb-4ff8-8a92-55ee120877b7",
            "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877b7-",
            "urn:uuid:53fefa32-fcbb-4ff8-8a92-55ee120877bg",
        ] {
            err("uuid", json!(v));
        }
    }

    #[test]
    fn base64() {
        for v in [
            "aGVsbG8=",
            "aGk=",
            "aGVsbG8gd29ybGQh",
            "ab+/",
            "YW55\nY2Fy bmFs",
            "  aGk=\n",
        ] {
            ok("base64Binary", json!(v));
        }
        for v in [
            "aGVsbG8", "a", "aG Vs", "aGk=aGk=", "a===", "====", "aGVs*G8=", "  ", "",
        ] {
            err("base64Binary", json!(v));
        }
    }

    #[test]
    fn dates() {
        for v in [
            "2020",
            "2020-02",
            "2020-02-29",
            "2000-02-29",
            "0001-01-01",
            "9999-12-31",
        ] {
            ok("date", json!(v));
        }
        assert_eq!(
            err("date", json!("2020-02-30")),
            "'2020-02-30' is not a valid date (day 30 does not exist in 2020-02, which has 29 days)"
        );
        for v in [
            "2019-02-29",
            "1900-02-29",
            "2021-04-31",
            "2020-13",
            "2020-00",
            "2020-01-00",
            "0000",
            "20",
            "2020-1",
            "2020-01-1",
            "2020-01-01T10:00:00Z",
            "2020-01-01 ",
            "+2020",
            "２０２０",
        ] {
            err("date", json!(v));
        }
        err("date", json!(2020));
    }

    #[test]
    fn date_times() {
        for v in [
            "2020",
            "2020-06",
            "2020-06-15",
            "2020-06-15T10:30:00Z",
            "2020-06-15T10:30:00+14:00",
            "2020-06-15T10:30:00-14:00",
            "2020-06-15T10:30:00-00:00",
            "2020-06-15T10:30:00+05:45",
            "2020-06-15T10:30:00.123456789+01:00",
            "2016-12-31T23:59:60Z", // leap second
            "2020-06-15T00:00:00Z",
        ] {
            ok("dateTime", json!(v));
        }
        assert!(err("dateTime", json!("2020-06-15T10:30:00")).contains("time zone"));
        for v in [
            "2020-06-15T24:00:00Z",
            "2020-06-15T10:30Z",
            "2020-06-15T10:30+01:00",
            "2020-06-15T10:30:00+14:01",
            "2020-06-15T10:30:00+15:00",
            "2020-06-15T10:30:00+0100",
            "2020-06-15T10:30:00.Z",
            "2020-06-15T10:60:00Z",
            "2020-06-15T10:30:61Z",
            "2020-06T10:30:00Z",
            "2020-06-15T",
            "2020-06-15 10:30:00Z",
            "2020-06-15t10:30:00z",
            "2019-02-29T10:00:00Z",
            "2020-13-01T10:00:00Z",
        ] {
            err("dateTime", json!(v));
        }
    }

    #[test]
    fn instants() {
        ok("instant", json!("2015-02-07T13:28:17.239+02:00"));
        ok("instant", json!("2015-02-07T13:28:17Z"));
        for v in [
            "2015-02-07",
            "2015",
            "2015-02-07T13:28:17",
            "2015-02-07T13:28Z",
            "2015-02-30T13:28:17Z",
        ] {
            err("instant", json!(v));
        }
    }

    #[test]
    fn times() {
        for v in ["00:00:00", "23:59:59", "12:30:00.5", "23:59:60"] {
            ok("time", json!(v));
        }
        for v in [
            "24:00:00",
            "12:30",
            "12:60:00",
            "12:30:00Z",
            "12:30:00+01:00",
            "1:30:00",
            "12:30:00.",
        ] {
            err("time", json!(v));
        }
    }

    #[test]
    fn unknown_type() {
        assert!(err("HumanName", json!("x")).contains("not a FHIR primitive type"));
    }
}
