//! Finding `zeroimage://PACKAGE[/BIN]` values in YAML text and replacing them in place. The text is
//! never parsed into a tree and written back: each line is read just enough to find a scalar value
//! (after `key:` or a sequence `-`; plain, single- or double-quoted), so comments, ordering, quoting,
//! anchors and every other byte stay as they were. Block scalars (`|`, `>`) are text and left alone,
//! unless one holds nothing but a reference; that, a value continued on the next line, and a reference
//! anywhere else (a flow collection, a longer string) are errors naming the line, so none is silently
//! left unresolved or half replaced.

use std::ops::Range;

/// The scheme of a reference to a binary of the workspace.
pub const SCHEME: &str = "zeroimage://";

/// One reference found: its line (1-based), where its text lies, and what it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Found {
    pub line: usize,
    pub range: Range<usize>,
    pub package: String,
    pub bin: Option<String>,
}

/// A reference that cannot be read, with its line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ScanError {
    pub line: usize,
    pub message: String,
}

/// A scalar on a line: its content's byte range within the line.
struct Scalar {
    content: Range<usize>,
    /// Double-quoted content may hold escapes.
    double_quoted: bool,
    /// Unquoted: the value may go on over the next, more indented lines.
    plain: bool,
}

fn indent_of(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn skip_blanks(line: &str, mut pos: usize) -> usize {
    while matches!(line.as_bytes().get(pos), Some(b' ' | b'\t')) {
        pos += 1;
    }
    pos
}

/// True when `pos` ends a plain token: end of line, or a blank.
fn at_break(line: &str, pos: usize) -> bool {
    matches!(line.as_bytes().get(pos), None | Some(b' ' | b'\t'))
}

/// Where a comment starts: the first `#` outside quotes at the start or after a blank.
fn comment_start(line: &str) -> usize {
    let bytes = line.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(b'"') if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'#' && (i == 0 || matches!(bytes[i - 1], b' ' | b'\t')) => return i,
            None if (b == b'"' || b == b'\'')
                && (i == 0
                    || matches!(
                        bytes[i - 1],
                        b' ' | b'\t' | b':' | b'-' | b'[' | b'{' | b','
                    )) =>
            {
                quote = Some(b);
            }
            None => {}
        }
        i += 1;
    }
    bytes.len()
}

/// The end (exclusive) of a quoted scalar starting at `start` (the quote), or `None` when it does not
/// end on this line.
fn quoted_end(line: &str, start: usize) -> Option<usize> {
    let bytes = line.as_bytes();
    let quote = bytes[start];
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if quote == b'"' => i += 2,
            b'\'' if quote == b'\'' && bytes.get(i + 1) == Some(&b'\'') => i += 2,
            b if b == quote => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Only blanks or a comment from `pos` on.
fn rest_is_empty(line: &str, pos: usize) -> bool {
    let pos = skip_blanks(line, pos);
    pos >= line.len() || line.as_bytes()[pos] == b'#'
}

/// Where a line's value starts, after any `- ` and `key:`, and the column of the node it belongs to
/// (the key's, else the last dash's: a block scalar's lines are more indented). `None` when the line
/// is no `key: value` or `- value`.
fn value_start(line: &str) -> Option<(usize, usize)> {
    let mut pos = indent_of(line);
    let mut dash: Option<usize> = None;
    while line[pos..].starts_with('-') && at_break(line, pos + 1) {
        dash = Some(pos);
        pos = skip_blanks(line, pos + 1);
    }
    let bytes = line.as_bytes();
    // The key's colon: after a quoted key, or the first `:` followed by a blank in a plain one.
    let colon = if matches!(bytes.get(pos), Some(b'"' | b'\'')) {
        quoted_end(line, pos)
            .map(|end| skip_blanks(line, end))
            .filter(|&colon| bytes.get(colon) == Some(&b':') && at_break(line, colon + 1))
    } else if matches!(
        bytes.get(pos),
        Some(b'[' | b'{' | b'#' | b'|' | b'>') | None
    ) {
        None
    } else {
        (pos..comment_start(line)).find(|&i| bytes[i] == b':' && at_break(line, i + 1))
    };
    match (colon, dash) {
        (Some(colon), _) => Some((skip_blanks(line, colon + 1), pos)),
        (None, Some(dash)) => Some((pos, dash)),
        (None, None) => None,
    }
}

/// The scalar at `pos` when it is a whole value on this line.
fn scalar_at(line: &str, mut pos: usize) -> Option<Scalar> {
    let bytes = line.as_bytes();
    // Anchors and tags before the value.
    while matches!(bytes.get(pos), Some(b'&' | b'!')) {
        while pos < bytes.len() && !matches!(bytes[pos], b' ' | b'\t') {
            pos += 1;
        }
        pos = skip_blanks(line, pos);
    }
    match bytes.get(pos)? {
        b'"' | b'\'' => {
            let end = quoted_end(line, pos)?;
            rest_is_empty(line, end).then_some(Scalar {
                content: pos + 1..end - 1,
                double_quoted: bytes[pos] == b'"',
                plain: false,
            })
        }
        b'[' | b'{' | b'|' | b'>' | b'#' | b'*' => None,
        _ => {
            let end = comment_start(line).max(pos);
            let text = line[pos..end].trim_end();
            (!text.is_empty()).then_some(Scalar {
                content: pos..pos + text.len(),
                double_quoted: false,
                plain: true,
            })
        }
    }
}

/// `|` or `>` (with indicators) as the whole value: a block scalar starts.
fn opens_block(line: &str, pos: usize) -> bool {
    let bytes = line.as_bytes();
    if !matches!(bytes.get(pos), Some(b'|' | b'>')) {
        return false;
    }
    let mut end = pos + 1;
    while matches!(bytes.get(end), Some(b'+' | b'-' | b'1'..=b'9')) {
        end += 1;
    }
    rest_is_empty(line, end)
}

/// Reads `PACKAGE[/BIN]` after the scheme.
fn parse_reference(text: &str) -> Result<(String, Option<String>), String> {
    let rest = &text[SCHEME.len()..];
    let valid = |part: &str| {
        !part.is_empty()
            && part
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    };
    let (package, bin) = match rest.split_once('/') {
        Some((package, bin)) => (package, Some(bin)),
        None => (rest, None),
    };
    if valid(package) && bin.is_none_or(valid) {
        Ok((package.to_owned(), bin.map(str::to_owned)))
    } else {
        Err(format!(
            "`{}` is not {SCHEME}PACKAGE or {SCHEME}PACKAGE/BIN",
            crate::util::sanitize::outside(text, 200)
        ))
    }
}

/// A block scalar being read: the column of its node (its lines are more indented) and its first
/// line that is not blank, with that line's number, while it is the only one.
struct Block {
    column: usize,
    content: Option<(usize, String)>,
    lines: usize,
}

impl Block {
    fn add(&mut self, number: usize, line: &str) {
        let text = line.trim();
        if text.is_empty() {
            return;
        }
        self.lines += 1;
        if self.lines == 1 {
            self.content = Some((number, text.to_owned()));
        }
    }

    /// A block scalar holding nothing but a reference would go out as it is: an error.
    fn check(&self) -> Result<(), ScanError> {
        match &self.content {
            Some((line, text))
                if self.lines == 1 && text.starts_with(SCHEME) && !text.contains([' ', '\t']) =>
            {
                Err(ScanError {
                    line: *line,
                    message: format!(
                        "`{}` is a block scalar (`|` or `>`), which is text and not resolved; put \
                         the reference on the line of its key: `image: {SCHEME}PACKAGE[/BIN]`",
                        crate::util::sanitize::outside(text, 200)
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

/// Every reference in `text`, in order.
pub(crate) fn scan(text: &str) -> Result<Vec<Found>, ScanError> {
    let mut found = Vec::new();
    let mut offset = 0;
    let mut block: Option<Block> = None;
    // A plain reference just read (its line, the column of its node): a more indented line after it
    // would continue the value, and only the first line would be replaced.
    let mut plain: Option<(usize, usize)> = None;
    for (index, raw) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim_end_matches('\n').trim_end_matches('\r');
        let start = offset;
        offset += raw.len();
        if let Some(open) = &mut block {
            if line.trim().is_empty() || indent_of(line) > open.column {
                open.add(number, line);
                continue;
            }
            open.check()?;
            block = None;
        }
        if let Some((at, column)) = plain {
            let text = line.trim_start_matches(' ');
            if text.trim().is_empty() {
                continue;
            }
            plain = None;
            if indent_of(line) > column && !text.starts_with('#') {
                return Err(ScanError {
                    line: at,
                    message: format!(
                        "the value continues on line {number}, and only its first line would be \
                         replaced; put the whole reference on one line: `image: \
                         {SCHEME}PACKAGE[/BIN]`"
                    ),
                });
            }
        }
        let mut taken: Option<Range<usize>> = None;
        if let Some((pos, node)) = value_start(line) {
            if opens_block(line, pos) {
                block = Some(Block {
                    column: node,
                    content: None,
                    lines: 0,
                });
            } else if let Some(scalar) = scalar_at(line, pos) {
                let content = &line[scalar.content.clone()];
                if content.starts_with(SCHEME) {
                    if scalar.double_quoted && content.contains('\\') {
                        return Err(ScanError {
                            line: number,
                            message: format!(
                                "`{}` holds an escape; write the reference plainly",
                                crate::util::sanitize::outside(content, 200)
                            ),
                        });
                    }
                    let (package, bin) = parse_reference(content).map_err(|message| ScanError {
                        line: number,
                        message,
                    })?;
                    found.push(Found {
                        line: number,
                        range: start + scalar.content.start..start + scalar.content.end,
                        package,
                        bin,
                    });
                    // A plain scalar may go on over the next lines; a comment ends it.
                    if scalar.plain && comment_start(line) == line.len() {
                        plain = Some((number, node));
                    }
                    taken = Some(scalar.content);
                }
            }
        }
        // A reference anywhere else on the line (outside comments) would be left unresolved.
        let code = &line[..comment_start(line)];
        let stray = code.match_indices(SCHEME).any(|(at, _)| {
            taken
                .as_ref()
                .is_none_or(|range| !(range.start..range.end).contains(&at))
        });
        if stray {
            return Err(ScanError {
                line: number,
                message: format!(
                    "a {SCHEME} reference that is not a whole value on its line is not read; write it \
                     as `image: {SCHEME}PACKAGE[/BIN]`"
                ),
            });
        }
    }
    if let Some(open) = &block {
        open.check()?;
    }
    Ok(found)
}

/// `text` with each range replaced by its text; everything else is kept byte for byte.
pub(crate) fn replace(text: &str, replacements: &[(Range<usize>, String)]) -> String {
    let mut sorted: Vec<&(Range<usize>, String)> = replacements.iter().collect();
    sorted.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    for (range, with) in sorted {
        out.push_str(&text[at..range.start]);
        out.push_str(with);
        at = range.end;
    }
    out.push_str(&text[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<(usize, String, Option<String>, String)> {
        scan(text)
            .unwrap()
            .into_iter()
            .map(|f| (f.line, f.package, f.bin, text[f.range].to_owned()))
            .collect()
    }

    #[test]
    fn values_after_keys_and_dashes_in_any_quoting_are_found() {
        let text = "\
# image: zeroimage://in-a-comment
apiVersion: apps/v1
spec:
  containers:
  - name: api
    image: zeroimage://server/api   # the api
  - image: 'zeroimage://tools'
    args: [\"--x\"]
  - {name: other, image: nginx:1.25}
  - \"image\": \"zeroimage://server/worker\"
---
list:
  - zeroimage://tools
  - - zeroimage://server
key: &anchor zeroimage://server/api\r
";
        let found = names(text);
        assert_eq!(
            found,
            [
                (
                    6,
                    "server".into(),
                    Some("api".into()),
                    "zeroimage://server/api".into()
                ),
                (7, "tools".into(), None, "zeroimage://tools".into()),
                (
                    10,
                    "server".into(),
                    Some("worker".into()),
                    "zeroimage://server/worker".into()
                ),
                (13, "tools".into(), None, "zeroimage://tools".into()),
                (14, "server".into(), None, "zeroimage://server".into()),
                (
                    15,
                    "server".into(),
                    Some("api".into()),
                    "zeroimage://server/api".into()
                ),
            ]
        );
    }

    #[test]
    fn block_scalars_are_text_and_other_places_are_errors() {
        let text = "\
data:
  script: |
    image: zeroimage://not-a-value
    echo zeroimage://x
  other: zeroimage://tools
items:
- |
  zeroimage://text and more
- >-
  zeroimage://one
  zeroimage://two
- zeroimage://server
";
        assert_eq!(
            names(text),
            [
                (5, "tools".into(), None, "zeroimage://tools".into()),
                (12, "server".into(), None, "zeroimage://server".into()),
            ]
        );
        let flow = "spec: {image: zeroimage://tools}\n";
        assert_eq!(scan(flow).unwrap_err().line, 1);
        let inside = "args: --image=zeroimage://tools\n";
        assert_eq!(scan(inside).unwrap_err().line, 1);
        let bad = "a: 1\nimage: zeroimage://server/api/extra\n";
        let err = scan(bad).unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("PACKAGE/BIN"), "{}", err.message);
        let escaped = "image: \"zeroimage://tools\\u0041\"\n";
        assert!(scan(escaped).is_err());
    }

    #[test]
    fn a_value_continued_on_the_next_line_is_an_error_at_its_first_line() {
        for text in [
            "a: 1\nimage: zeroimage://server\n  /api\n",
            "a: 1\n- zeroimage://server\n\n  /api\n",
            "a: 1\nspec:\n    image: &x zeroimage://server\n      /api\r\n",
        ] {
            let err = scan(text).unwrap_err();
            assert_eq!(err.line, 2 + usize::from(text.contains("spec")), "{text:?}");
            assert!(
                err.message.contains("continues on line")
                    && err.message.contains("put the whole reference on one line"),
                "{}",
                err.message
            );
        }
        // A quoted value that goes on over the next line is not a whole value on its line.
        for text in [
            "a: 1\nimage: \"zeroimage://server\n  /api\"\n",
            "a: 1\nimage: 'zeroimage://server\n  /api'\n",
        ] {
            let err = scan(text).unwrap_err();
            assert_eq!(err.line, 2, "{text:?}");
            assert!(
                err.message.contains("not a whole value on its line"),
                "{}",
                err.message
            );
        }
        // What follows at the same or a lower indentation, or after a comment, is not the value.
        for text in [
            "- image: zeroimage://server\n  name: api\n",
            "image: zeroimage://server\nname: api\n",
            "image: zeroimage://server # c\n  more\n",
            "image: zeroimage://server\n  # a comment\nname: api\n",
            "image: 'zeroimage://server'\nname: api\n",
            "image: zeroimage://server\n",
        ] {
            assert_eq!(scan(text).unwrap().len(), 1, "{text:?}");
        }
    }

    #[test]
    fn a_block_scalar_holding_only_a_reference_is_an_error_at_its_line() {
        for (text, line) in [
            ("image: |\n  zeroimage://server/api\n", 2),
            ("a: 1\nimage: >-\n\n    zeroimage://tools\n\nb: 2\n", 4),
            ("- |+ # keep\n  zeroimage://tools\r\n- x\n", 2),
            ("x:\n  - >2\n     zeroimage://tools\n", 3),
        ] {
            let err = scan(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}");
            assert!(
                err.message.contains("block scalar") && err.message.contains("image: zeroimage://"),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn replacing_keeps_every_other_byte() {
        let text = "a: zeroimage://x # keep\r\nb: 'zeroimage://y'\n";
        let found = scan(text).unwrap();
        let out = replace(
            text,
            &[
                (found[1].range.clone(), "r/y@sha256:2".to_owned()),
                (found[0].range.clone(), "r/x@sha256:1".to_owned()),
            ],
        );
        assert_eq!(out, "a: r/x@sha256:1 # keep\r\nb: 'r/y@sha256:2'\n");
    }
}
