//! Declared licenses in the documents. Cargo takes any text as a package's `license`; crates.io takes
//! SPDX expressions and a few legacy forms. Both documents must hold valid SPDX expressions, so the
//! text is parsed with the `spdx` crate: an expression (legacy forms rewritten, such as
//! `MIT/Apache-2.0` as `MIT OR Apache-2.0`) is written as one, and anything else is kept as text the
//! way each format records a license it cannot express: SPDX as a `LicenseRef-` with the text in
//! `hasExtractedLicensingInfos`, CycloneDX as a license `name`. It is never a reason to refuse a build.

use spdx::lexer::{Lexer, Token};
use spdx::{Expression, ParseMode};

use crate::oci::Digest;

/// How a declared license is read: SPDX expressions and the legacy forms crates.io accepts (`/` for
/// OR, `GPL-2.0+`, deprecated identifiers), but no guesses from imprecise names (`BSD` does not say
/// which BSD license).
const READ: ParseMode = ParseMode {
    allow_slash_as_or_operator: true,
    allow_imprecise_license_names: false,
    allow_postfix_plus_on_gpl: true,
    allow_deprecated: true,
    allow_unknown: false,
};

/// What is written: SPDX syntax. Deprecated identifiers are still identifiers of the license list.
const WRITE: ParseMode = ParseMode {
    allow_deprecated: true,
    ..ParseMode::STRICT
};

const NOASSERTION: &str = "NOASSERTION";

/// Deprecated identifiers that name a license with an exception, and the expression the SPDX license
/// list replaced each with (validators read `...-exception` as an exception, not a license).
const WITH_EXCEPTION: &[(&str, &str)] = &[
    (
        "GPL-2.0-with-GCC-exception",
        "GPL-2.0-only WITH GCC-exception-2.0",
    ),
    (
        "GPL-2.0-with-autoconf-exception",
        "GPL-2.0-only WITH Autoconf-exception-2.0",
    ),
    (
        "GPL-2.0-with-bison-exception",
        "GPL-2.0-only WITH Bison-exception-2.2",
    ),
    (
        "GPL-2.0-with-classpath-exception",
        "GPL-2.0-only WITH Classpath-exception-2.0",
    ),
    (
        "GPL-2.0-with-font-exception",
        "GPL-2.0-only WITH Font-exception-2.0",
    ),
    (
        "GPL-3.0-with-GCC-exception",
        "GPL-3.0-only WITH GCC-exception-3.1",
    ),
    (
        "GPL-3.0-with-autoconf-exception",
        "GPL-3.0-only WITH Autoconf-exception-3.0",
    ),
    ("eCos-2.0", "GPL-2.0-or-later WITH eCos-exception-2.0"),
];

/// Longest declared license read as an expression or kept as text (real ones are under 100 bytes).
pub(crate) const MAX_LICENSE: usize = 1000;

/// A declared license as the documents record it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum License {
    /// A valid SPDX expression, and the `LicenseRef-` identifiers it names.
    Expression {
        expression: String,
        refs: Vec<String>,
    },
    /// Text that is no SPDX expression, cleaned for display.
    Text(String),
}

impl License {
    /// The license `declared` names; `None` when it is blank.
    pub(crate) fn of(declared: &str) -> Option<License> {
        let declared = declared.trim();
        // SPDX's own word for "nothing is said", which the license list carries as an identifier.
        if declared.is_empty() || declared == NOASSERTION {
            return None;
        }
        Some(expression(declared).unwrap_or_else(|| {
            License::Text(crate::util::sanitize::outside(declared, MAX_LICENSE))
        }))
    }

    /// The identifier SPDX documents give unparsed text: the same text always gets the same one.
    pub(crate) fn text_ref(text: &str) -> String {
        let digest = Digest::of(text.as_bytes());
        format!("LicenseRef-declared-{}", &digest.hex()[..16])
    }
}

/// `declared` as an SPDX expression in canonical form, when it is one this document can carry: no
/// `DocumentRef-` (we reference no other document) and no `AdditionRef-` (SPDX 3 only).
fn expression(declared: &str) -> Option<License> {
    if declared.len() > MAX_LICENSE || Expression::parse_mode(declared, READ).is_err() {
        return None;
    }
    let mut refs = Vec::new();
    let mut tokens = Vec::new();
    for token in Lexer::new_mode(declared, READ) {
        let token = token.ok()?.token;
        match token {
            Token::LicenseRef {
                doc_ref: None,
                lic_ref,
            } => refs.push(format!("LicenseRef-{lic_ref}")),
            Token::LicenseRef { .. } | Token::AdditionRef { .. } | Token::Unknown(_) => {
                return None;
            }
            Token::Spdx(id) if id.name == NOASSERTION => return None,
            _ => {}
        }
        tokens.push(token);
    }
    // GNU licenses spell "or later" in their identifier (`GPL-2.0+` is `GPL-2.0-or-later`); where
    // that makes no identifier, the plain spelling is tried.
    let expression = [true, false]
        .into_iter()
        .map(|gnu| render(&tokens, gnu))
        .find(|text| Expression::parse_mode(text, WRITE).is_ok())?;
    refs.sort();
    refs.dedup();
    Some(License::Expression { expression, refs })
}

/// The tokens as SPDX text: operators in capitals, one space around them.
fn render(tokens: &[Token], gnu: bool) -> String {
    let mut out = String::new();
    let mut iter = tokens.iter().peekable();
    while let Some(token) = iter.next() {
        match token {
            Token::Spdx(id) => {
                let plus = iter.next_if(|t| matches!(t, Token::Plus)).is_some();
                let name = id.name;
                let replaced = WITH_EXCEPTION.iter().find(|(old, _)| *old == name);
                if let Some((_, expression)) = replaced.filter(|_| gnu && !plus) {
                    out.push_str(expression);
                } else if gnu && id.is_gnu() {
                    let base = name
                        .strip_suffix("-only")
                        .or_else(|| name.strip_suffix("-or-later"))
                        .unwrap_or(name);
                    let later = plus || name.ends_with("-or-later");
                    out.push_str(base);
                    out.push_str(if later { "-or-later" } else { "-only" });
                } else {
                    out.push_str(name);
                    if plus {
                        out.push('+');
                    }
                }
            }
            Token::LicenseRef { lic_ref, .. } => {
                out.push_str("LicenseRef-");
                out.push_str(lic_ref);
            }
            Token::Exception(id) => out.push_str(id.name),
            Token::With => out.push_str(" WITH "),
            Token::And => out.push_str(" AND "),
            Token::Or => out.push_str(" OR "),
            Token::OpenParen => out.push('('),
            Token::CloseParen => out.push(')'),
            Token::Plus => out.push('+'),
            Token::AdditionRef { add_ref, .. } => {
                out.push_str("AdditionRef-");
                out.push_str(add_ref);
            }
            Token::Unknown(text) => out.push_str(text),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expression_of(text: &str) -> Option<String> {
        match License::of(text)? {
            License::Expression { expression, .. } => Some(expression),
            License::Text(_) => None,
        }
    }

    #[test]
    fn expressions_are_kept_and_legacy_forms_rewritten() {
        for (declared, written) in [
            ("MIT OR Apache-2.0", "MIT OR Apache-2.0"),
            (
                "(MIT OR Apache-2.0) AND Unicode-3.0",
                "(MIT OR Apache-2.0) AND Unicode-3.0",
            ),
            (
                "Apache-2.0 WITH LLVM-exception",
                "Apache-2.0 WITH LLVM-exception",
            ),
            ("MIT/Apache-2.0", "MIT OR Apache-2.0"),
            ("MIT / Apache-2.0", "MIT OR Apache-2.0"),
            ("MIT or Apache-2.0", "MIT OR Apache-2.0"),
            ("  MIT  ", "MIT"),
            ("GPL-2.0+", "GPL-2.0-or-later"),
            ("GPL-3.0", "GPL-3.0-only"),
            ("LGPL-2.1-or-later", "LGPL-2.1-or-later"),
            ("Apache-2.0+", "Apache-2.0+"),
            (
                "MIT OR GPL-2.0-with-GCC-exception",
                "MIT OR GPL-2.0-only WITH GCC-exception-2.0",
            ),
        ] {
            assert_eq!(
                expression_of(declared).as_deref(),
                Some(written),
                "{declared}"
            );
        }
        assert_eq!(
            License::of("MIT OR LicenseRef-Proprietary"),
            Some(License::Expression {
                expression: "MIT OR LicenseRef-Proprietary".to_owned(),
                refs: vec!["LicenseRef-Proprietary".to_owned()],
            })
        );
    }

    #[test]
    fn anything_else_is_text() {
        for declared in [
            ")MIT(",
            "MIT OR",
            "(MIT",
            "see LICENSE file",
            "BSD",
            "Apache 2.0",
            "MIT OR Foo",
            "DocumentRef-x:LicenseRef-y",
            "MIT WITH AdditionRef-z",
            "MIT OR NOASSERTION",
        ] {
            assert!(
                matches!(License::of(declared), Some(License::Text(_))),
                "{declared}"
            );
        }
        assert_eq!(License::of("   "), None);
        assert_eq!(License::of("NOASSERTION"), None);
        let long = format!("MIT{}", " OR MIT".repeat(MAX_LICENSE));
        assert!(matches!(License::of(&long), Some(License::Text(_))));
        assert_eq!(
            License::of("a\u{1b}[31mb"),
            Some(License::Text("a\\u{1b}[31mb".to_owned()))
        );
    }

    #[test]
    fn text_refs_are_stable_spdx_identifiers() {
        let id = License::text_ref(")MIT(");
        assert_eq!(id, License::text_ref(")MIT("));
        assert_ne!(id, License::text_ref("MIT("));
        assert!(id.starts_with("LicenseRef-declared-"));
        assert!(
            id["LicenseRef-".len()..]
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        );
    }
}
