//! Top-level members of a JSON object, found by skipping over the values in between
//! rather than parsing them: metering needs one member of every answer, and a full
//! parse of a pretty-printed answer costs more than the rest of the call's own work.

/// The raw text of each of `keys`' values in the top-level object `doc`, or `None`
/// when `doc` is not a plain object (escaped keys included): the caller then parses
/// it in full. Values are not validated beyond their nesting.
pub fn top_level<'a, const N: usize>(doc: &'a [u8], keys: [&str; N]) -> Option<Members<'a, N>> {
    Cursor { doc, at: 0 }.members(keys)
}

/// The raw text of the first top-level member named `key` in the object `doc`, read
/// up to that member only: `Some(None)` when the whole object lacks it, `None` when
/// `doc` is not a plain object as far as it was read.
pub fn first_top_level<'a>(doc: &'a [u8], key: &str) -> Option<Option<&'a [u8]>> {
    let mut first = None;
    Cursor { doc, at: 0 }.each_member(|name, value| {
        let found = name == key.as_bytes();
        if found {
            first = Some(value);
        }
        found
    })?;
    Some(first)
}

/// [`top_level`] of the object that is the value of the top-level member named by
/// `quoted_key` (the key in quotes), with the object's raw text. Searched from the end
/// of `doc`: answers put their usage last or nearly so, and only what follows a
/// candidate is read to prove it sits at the top level. The object is read once, for
/// its end and its members together.
pub fn top_level_object_from_end<'a, const N: usize>(
    doc: &'a [u8],
    quoted_key: &[u8],
    keys: [&str; N],
) -> Option<(&'a [u8], Members<'a, N>)> {
    from_end(doc, quoted_key, |at| {
        let start = at.at
            + at.doc
                .get(at.at..)?
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        let members = at.members(keys)?;
        Some((&at.doc[start..at.at], members))
    })
}

/// What `read` makes of the value of the last top-level member named `quoted_key`.
fn from_end<'a, T>(
    doc: &'a [u8],
    quoted_key: &[u8],
    read: impl Fn(&mut Cursor<'a>) -> Option<T>,
) -> Option<T> {
    // Candidates by the key's first letter, a vectorised byte search: building a
    // substring finder for every document costs more than the search itself.
    let &first = quoted_key.get(1)?;
    let candidates = memchr::memrchr_iter(first, doc)
        .filter_map(|at| at.checked_sub(1))
        .filter(|&pos| doc[pos..].starts_with(quoted_key));
    for pos in candidates {
        // A key's opening quote follows `{` or `,`; inside a string it would follow `\`.
        let before = doc[..pos].iter().rev().find(|b| !b.is_ascii_whitespace());
        if !matches!(before, Some(b'{' | b',')) {
            continue;
        }
        let mut at = Cursor {
            doc,
            at: pos + quoted_key.len(),
        };
        if at.expect(b':').is_none() {
            continue;
        }
        let Some(value) = read(&mut at) else { continue };
        // Deeper down, more than one closing bracket would follow before the end.
        if at.rest_closes_document() {
            return Some(value);
        }
    }
    None
}

/// The raw value of each asked-for member, in the order asked; `None` where absent.
pub type Members<'a, const N: usize> = [Option<&'a [u8]>; N];

struct Cursor<'a> {
    doc: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    /// The raw values of `keys` in the object starting here (escaped keys refused);
    /// leaves the cursor past its closing brace.
    fn members<const N: usize>(&mut self, keys: [&str; N]) -> Option<Members<'a, N>> {
        let mut found = [None; N];
        self.each_member(|key, value| {
            if let Some(i) = keys.iter().position(|k| k.as_bytes() == key) {
                found[i].get_or_insert(value);
            }
            false
        })?;
        Some(found)
    }

    /// Hands each member of the object starting here, name and raw value, to `visit`
    /// until it returns `true`; `None` when the object is not plain as far as it was
    /// read (escaped names included). Read to the end, the cursor is left past the
    /// closing brace.
    fn each_member(&mut self, mut visit: impl FnMut(&[u8], &'a [u8]) -> bool) -> Option<()> {
        self.expect(b'{')?;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let name = self.string()?;
            if name.contains(&b'\\') {
                return None;
            }
            self.expect(b':')?;
            let value = self.value()?;
            if visit(name, value) {
                return Some(());
            }
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    /// The next byte that is not whitespace, left in place.
    fn peek(&mut self) -> Option<u8> {
        while let Some(&b) = self.doc.get(self.at) {
            if !b.is_ascii_whitespace() {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    fn next(&mut self) -> Option<u8> {
        let b = self.peek()?;
        self.at += 1;
        Some(b)
    }

    fn expect(&mut self, b: u8) -> Option<()> {
        (self.next()? == b).then_some(())
    }

    /// Whether what follows is the remaining members of an object, its closing brace
    /// and the end of the document.
    fn rest_closes_document(&mut self) -> bool {
        loop {
            match self.next() {
                Some(b'}') => return self.peek().is_none(),
                Some(b',') => {
                    let member = self.string().and_then(|_| self.expect(b':'));
                    if member.and_then(|_| self.value()).is_none() {
                        return false;
                    }
                }
                _ => return false,
            }
        }
    }

    /// A string's contents, escapes left as they are.
    fn string(&mut self) -> Option<&'a [u8]> {
        self.expect(b'"')?;
        let start = self.at;
        self.close_string()?;
        Some(&self.doc[start..self.at - 1])
    }

    /// Moves past the quote that ends the string the cursor is in.
    fn close_string(&mut self) -> Option<()> {
        loop {
            let i = self.at + memchr::memchr2(b'"', b'\\', self.doc.get(self.at..)?)?;
            if self.doc[i] == b'"' {
                self.at = i + 1;
                return Some(());
            }
            self.at = i + 2;
        }
    }

    /// One value's raw text.
    fn value(&mut self) -> Option<&'a [u8]> {
        let start = self.at
            + self
                .doc
                .get(self.at..)?
                .iter()
                .position(|b| !b.is_ascii_whitespace())?;
        self.at = start;
        match self.doc[start] {
            b'"' => {
                self.string()?;
            }
            open @ (b'{' | b'[') => {
                // Only this bracket kind can close the value; strings may hold either.
                let close = if open == b'{' { b'}' } else { b']' };
                let mut depth = 0usize;
                loop {
                    let i = self.at + memchr::memchr3(b'"', open, close, self.doc.get(self.at..)?)?;
                    self.at = i + 1;
                    match self.doc[i] {
                        b'"' => self.close_string()?,
                        b if b == open => depth += 1,
                        _ => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                    }
                }
            }
            _ => {
                let len = self.doc[start..]
                    .iter()
                    .position(|b| matches!(b, b',' | b'}' | b']') || b.is_ascii_whitespace())?;
                self.at = start + len;
            }
        }
        Some(&self.doc[start..self.at])
    }
}

#[cfg(test)]
mod tests {
    use super::{first_top_level, top_level, top_level_object_from_end};

    /// The raw `usage` object found from the end.
    fn usage_from_end(doc: &[u8]) -> Option<&[u8]> {
        top_level_object_from_end(doc, br#""usage""#, ["input_tokens"]).map(|(raw, _)| raw)
    }
    use serde_json::{json, Value};

    fn raw(doc: &str, key: &str) -> Option<Option<String>> {
        top_level(doc.as_bytes(), [key])
            .map(|[v]| v.map(|v| String::from_utf8(v.to_vec()).expect("utf-8")))
    }

    #[test]
    fn members_are_found_at_the_top_level_only() {
        let doc = json!({
            "content": [{"type": "tool_use", "input": {"usage": {"input_tokens": 1}}}],
            "text": "a \"usage\":{\"input_tokens\": 2} in a string, a \\ and a } ] {",
            "usage": {"input_tokens": 3, "nested": [{"a": "]}"}]},
            "n": -1.5e3,
            "t": true,
            "z": null,
            // A key in quotes deep inside a long string, and deep nesting.
            "long": format!("{}\"usage\": {{}} \\ {}", "x".repeat(40), "y".repeat(40)),
            "deep": [[[[[[[[[[[[[[[[[[{"usage": {"input_tokens": 4}}]]]]]]]]]]]]]]]]]]
        });
        for text in [
            doc.to_string(),
            serde_json::to_string_pretty(&doc).expect("pretty"),
        ] {
            let usage = raw(&text, "usage").expect("an object").expect("found");
            let usage: Value = serde_json::from_str(&usage).expect("the whole value");
            assert_eq!(usage, doc["usage"]);
            for key in ["n", "t", "z", "text", "content", "long", "deep"] {
                let v = raw(&text, key).expect("an object").expect("found");
                assert_eq!(serde_json::from_str::<Value>(&v).expect("value"), doc[key]);
            }
            assert_eq!(raw(&text, "input"), Some(None));
            for key in ["usage", "n", "deep"] {
                let first = first_top_level(text.as_bytes(), key).expect("an object");
                assert_eq!(
                    first.map(<[u8]>::to_vec),
                    raw(&text, key).expect("an object").map(String::into_bytes)
                );
            }
            assert_eq!(first_top_level(text.as_bytes(), "input"), Some(None));
        }
    }

    #[test]
    fn a_member_found_from_the_end_is_the_top_level_one() {
        // Key order as written: the top-level usage first, nested ones after it.
        let top_first = r#"{"usage": {"input_tokens": 3},
            "content": [{"input": {"usage": {"input_tokens": 1}}}],
            "meta": {"usage": {"input_tokens": 2}}}"#;
        let top_between = r#"{
          "content": [ { "input": { "usage": { "input_tokens": 1 } } } ],
          "text": "{\"usage\": {\"input_tokens\": 9}}, \\",
          "usage": { "input_tokens": 3 },
          "tier": "default"
        }
        "#;
        for text in [top_first, top_between] {
            let (raw, [input]) =
                top_level_object_from_end(text.as_bytes(), br#""usage""#, ["input_tokens"])
                    .expect("found");
            let value: Value = serde_json::from_slice(raw).expect("the whole value");
            assert_eq!(value, json!({"input_tokens": 3}), "{text}");
            assert_eq!(input, Some(&b"3"[..]));
        }
        let absent = r#"{"content": [{"usage": {"input_tokens": 1}}], "n": 1}"#;
        assert_eq!(usage_from_end(absent.as_bytes()), None);
        assert_eq!(usage_from_end(br#"[{"usage": {}}]"#), None);
        // Only an object is read; a nested object below a top-level `null` is not it.
        let null = r#"{"c": [{"usage": {"input_tokens": 1}}], "usage": null}"#;
        assert_eq!(usage_from_end(null.as_bytes()), None);
    }

    #[test]
    fn anything_but_a_plain_object_is_left_to_a_full_parse() {
        for doc in [
            "[1]",
            "",
            "{",
            r#"{"a": 1"#,
            r#"{"a" 1}"#,
            r#"{"a": "unterminated}"#,
            r#"{"a": {"b": 1}"#,
            r#"{"us\u0061ge": {}}"#,
        ] {
            assert_eq!(raw(doc, "usage"), None, "{doc}");
            assert_eq!(first_top_level(doc.as_bytes(), "usage"), None, "{doc}");
        }
        assert_eq!(raw(" { } ", "usage"), Some(None));
    }
}
