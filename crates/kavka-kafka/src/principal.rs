//! The principal of a client that authenticated with a certificate (mutual TLS), as
//! Kafka's default principal builder makes it: `User:` and the certificate subject's
//! distinguished name in RFC 2253 form (`CN=alice,OU=eng,O=acme`), mapped by
//! `ssl.principal.mapping.rules`: `RULE:pattern/replacement/[LU]` entries and `DEFAULT`,
//! separated by commas, tried in order; the first whose pattern matches the whole name
//! replaces it (`$1` for a group; `L`/`U` lower- or upper-cases the result), `DEFAULT`
//! keeps it.
//!
//! Invariants: pure (no I/O); a name no rule maps is an error, and the connection is
//! refused, as Kafka refuses it.

use kavka_model::acl::Principal;
use regex::Regex;

/// A rule that does not parse, or a certificate whose subject cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PrincipalError {
    #[error(
        "invalid ssl_principal_mapping_rules at '{0}': expected RULE:pattern/replacement/[LU] or DEFAULT, separated by commas"
    )]
    Syntax(String),
    #[error("invalid pattern in ssl_principal_mapping_rules '{pattern}': {why}")]
    Pattern { pattern: String, why: String },
    #[error("no ssl_principal_mapping_rules rule maps the certificate subject '{0}'")]
    NoRule(String),
    #[error("the client certificate does not parse: {0}")]
    Certificate(String),
}

#[derive(Clone, Copy, Debug)]
enum Case {
    Lower,
    Upper,
}

#[derive(Clone, Debug)]
enum Rule {
    Default,
    Replace {
        pattern: Regex,
        replacement: String,
        case: Option<Case>,
    },
}

/// Kafka's `ssl.principal.mapping.rules`.
#[derive(Clone, Debug)]
pub struct MappingRules(Vec<Rule>);

impl Default for MappingRules {
    /// `DEFAULT`: the whole distinguished name.
    fn default() -> Self {
        Self(vec![Rule::Default])
    }
}

/// Reads up to the next unescaped `/`: the text with `\/` unescaped, and the rest after
/// the slash.
fn until_slash(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if s[i + 1..].starts_with('/') => {
                out.push('/');
                chars.next();
            }
            '/' => return Some((out, &s[i + 1..])),
            c => out.push(c),
        }
    }
    None
}

impl MappingRules {
    pub fn parse(text: &str) -> Result<Self, PrincipalError> {
        let group = Regex::new(r"\$(\d+)").map_err(|e| PrincipalError::Syntax(e.to_string()))?;
        let mut rules = Vec::new();
        let mut rest = text.trim();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("DEFAULT") {
                rules.push(Rule::Default);
                rest = after;
            } else if let Some(after) = rest.strip_prefix("RULE:") {
                let syntax = || PrincipalError::Syntax(rest.to_string());
                let (pattern, after) = until_slash(after).ok_or_else(syntax)?;
                let (replacement, after) = until_slash(after).ok_or_else(syntax)?;
                let (case, after) = match after.chars().next() {
                    Some('L') => (Some(Case::Lower), &after[1..]),
                    Some('U') => (Some(Case::Upper), &after[1..]),
                    _ => (None, after),
                };
                // Java's replaceAll writes groups as $1; the regex crate reads `$1,` as a
                // group named "1,", so groups are braced.
                let braced = group.replace_all(&replacement, "$${$1}").into_owned();
                let compiled = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
                    PrincipalError::Pattern {
                        pattern: pattern.clone(),
                        why: e.to_string(),
                    }
                })?;
                rules.push(Rule::Replace {
                    pattern: compiled,
                    replacement: braced,
                    case,
                });
                rest = after;
            } else {
                return Err(PrincipalError::Syntax(rest.to_string()));
            }
            rest = rest.trim_start();
            match rest.strip_prefix(',') {
                Some(after) => rest = after.trim_start(),
                None if rest.is_empty() => {}
                None => return Err(PrincipalError::Syntax(rest.to_string())),
            }
        }
        if rules.is_empty() {
            return Err(PrincipalError::Syntax(text.to_string()));
        }
        Ok(Self(rules))
    }

    /// The name `dn` maps to, by the first rule that matches it.
    pub fn map(&self, dn: &str) -> Result<String, PrincipalError> {
        for rule in &self.0 {
            match rule {
                Rule::Default => return Ok(dn.to_string()),
                Rule::Replace {
                    pattern,
                    replacement,
                    case,
                } if pattern.is_match(dn) => {
                    let mapped = pattern.replace(dn, replacement.as_str()).into_owned();
                    return Ok(match case {
                        Some(Case::Lower) => mapped.to_lowercase(),
                        Some(Case::Upper) => mapped.to_uppercase(),
                        None => mapped,
                    });
                }
                Rule::Replace { .. } => {}
            }
        }
        Err(PrincipalError::NoRule(dn.to_string()))
    }
}

/// Escapes a value as RFC 2253 does.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.len() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The subject of a DER certificate as RFC 2253 writes it: the most specific part first
/// (`CN=alice,OU=eng,O=acme`), as Java's `X500Principal.getName()`.
pub fn subject_dn(der: &[u8]) -> Result<String, PrincipalError> {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let (_, cert) =
        X509Certificate::from_der(der).map_err(|e| PrincipalError::Certificate(e.to_string()))?;
    let registry = x509_parser::objects::oid_registry();
    let rdns: Vec<String> = cert
        .subject()
        .iter_rdn()
        .map(|rdn| {
            rdn.iter()
                .map(|attr| {
                    let name = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                        .map_or_else(|_| attr.attr_type().to_id_string(), String::from);
                    let value = attr.as_str().map_err(|e| {
                        PrincipalError::Certificate(format!("subject attribute {name}: {e}"))
                    })?;
                    Ok(format!("{name}={}", escape(value)))
                })
                .collect::<Result<Vec<_>, PrincipalError>>()
                .map(|parts| parts.join("+"))
        })
        .collect::<Result<_, _>>()?;
    Ok(rdns.into_iter().rev().collect::<Vec<_>>().join(","))
}

/// The principal of a client certificate: `User:` and its mapped subject.
pub fn of_certificate(der: &[u8], rules: &MappingRules) -> Result<Principal, PrincipalError> {
    Ok(Principal::user(rules.map(&subject_dn(der)?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_map_names_as_kafkas_ssl_principal_mapper() {
        let rules = MappingRules::parse(
            r"RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/, RULE:^CN=([^,]*),OU=(.*?),O=.*$/$1@$2/L,
              RULE:^cn=(.*?),ou=(.*?),dc=(.*?),dc=(.*?)$/$1@$2/U, RULE:^O=a\/b$/slash/, DEFAULT",
        )
        .unwrap();
        // (distinguished name) -> mapped name
        let table = [
            ("CN=kafka-svc,OU=ServiceUsers,O=Acme", "kafka-svc"),
            ("CN=Alice,OU=Eng,O=Acme", "alice@eng"),
            ("cn=bob,ou=ops,dc=acme,dc=com", "BOB@OPS"),
            ("O=a/b", "slash"),
            ("CN=client", "CN=client"),
        ];
        for (dn, want) in table {
            assert_eq!(rules.map(dn).unwrap(), want, "{dn}");
        }
        assert_eq!(MappingRules::default().map("CN=x,O=y").unwrap(), "CN=x,O=y");
        let strict = MappingRules::parse("RULE:^CN=(.*)$/$1/").unwrap();
        assert_eq!(
            strict.map("O=nobody"),
            Err(PrincipalError::NoRule("O=nobody".into()))
        );
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, words) in [
            ("RULES:x/y/", "at 'RULES:x/y/'"),
            ("RULE:x/y", "at 'RULE:x/y'"),
            ("RULE:(/y/", "invalid pattern"),
            ("DEFAULT DEFAULT", "at 'DEFAULT'"),
            ("", "ssl_principal_mapping_rules"),
        ] {
            let e = MappingRules::parse(text).unwrap_err().to_string();
            assert!(e.contains(words), "{text}: {e}");
        }
    }

    #[test]
    fn values_are_escaped_as_rfc_2253() {
        assert_eq!(escape("Acme, Inc."), r"Acme\, Inc.");
        assert_eq!(escape(" lead"), r"\ lead");
        assert_eq!(escape("plain"), "plain");
    }
}
