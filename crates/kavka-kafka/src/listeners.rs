//! Kafka's `listeners` and `advertised.listeners`: `NAME://host:port` lists.
//!
//! Invariants: names are unique within a list; every advertised name is a listener;
//! a listener without an advertised entry is advertised with the node's advertised host
//! (when it binds every interface) and its own port.

/// One listener: its name (e.g. `PLAINTEXT`, `EXTERNAL`), host and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KafkaListener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ListenerError {
    #[error("invalid listener '{0}': expected NAME://host:port, e.g. PLAINTEXT://0.0.0.0:9092")]
    Syntax(String),
    #[error("invalid listener name '{0}': use letters, digits and '_'")]
    Name(String),
    #[error("invalid port in listener '{0}'")]
    Port(String),
    #[error("listener name {0} appears twice")]
    Duplicate(String),
    #[error("advertised listener {0} is not one of the listeners")]
    NotListening(String),
    #[error("invalid listener.security.protocol.map entry '{0}': expected NAME:PROTOCOL")]
    MapSyntax(String),
    #[error("unknown security protocol '{0}': expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")]
    Protocol(String),
}

/// How a listener's clients connect (Kafka's security protocols that are served here).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }
}

/// Each listener's security protocol from `listener.security.protocol.map`
/// (`NAME:PROTOCOL,...`). A listener the map does not name uses the protocol its name
/// is (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL), and any other name PLAINTEXT (Kafka would refuse it;
/// existing configs with names like EXTERNAL keep working).
pub fn security_protocols(
    listeners: &[KafkaListener],
    map: &str,
) -> Result<Vec<(String, SecurityProtocol)>, ListenerError> {
    let mut named = Vec::new();
    for entry in map.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, protocol) = entry
            .split_once(':')
            .ok_or_else(|| ListenerError::MapSyntax(entry.into()))?;
        named.push((
            name.trim().to_ascii_uppercase(),
            protocol.trim().to_ascii_uppercase(),
        ));
    }
    listeners
        .iter()
        .map(|l| {
            let protocol = named
                .iter()
                .find(|(n, _)| *n == l.name)
                .map_or(l.name.as_str(), |(_, p)| p.as_str());
            let p = match protocol {
                "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
                "SSL" => SecurityProtocol::Ssl,
                "SASL_SSL" => SecurityProtocol::SaslSsl,
                "PLAINTEXT" => SecurityProtocol::Plaintext,
                other if named.iter().any(|(n, _)| *n == l.name) => {
                    return Err(ListenerError::Protocol(other.into()));
                }
                _ => SecurityProtocol::Plaintext,
            };
            Ok((l.name.clone(), p))
        })
        .collect()
}

/// Parses `NAME://host:port[,NAME://host:port...]`; an empty string is no listener.
pub fn parse_listeners(s: &str) -> Result<Vec<KafkaListener>, ListenerError> {
    let mut out: Vec<KafkaListener> = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, addr) = part
            .split_once("://")
            .ok_or_else(|| ListenerError::Syntax(part.into()))?;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ListenerError::Name(name.into()));
        }
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| ListenerError::Syntax(part.into()))?;
        let port: u16 = port.parse().map_err(|_| ListenerError::Port(part.into()))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = name.to_ascii_uppercase();
        if out.iter().any(|l| l.name == name) {
            return Err(ListenerError::Duplicate(name));
        }
        out.push(KafkaListener {
            name,
            host: host.to_string(),
            port,
        });
    }
    Ok(out)
}

/// What each listener advertises: the explicit entry, or `default_host` and the bound
/// port (`bound`: the ports actually bound, by listener, for port 0).
pub fn advertised(
    listeners: &[KafkaListener],
    explicit: &[KafkaListener],
    default_host: &str,
) -> Result<Vec<KafkaListener>, ListenerError> {
    if let Some(stray) = explicit
        .iter()
        .find(|a| !listeners.iter().any(|l| l.name == a.name))
    {
        return Err(ListenerError::NotListening(stray.name.clone()));
    }
    Ok(listeners
        .iter()
        .map(|l| {
            explicit
                .iter()
                .find(|a| a.name == l.name)
                .cloned()
                .unwrap_or_else(|| KafkaListener {
                    name: l.name.clone(),
                    host: match l.host.as_str() {
                        "" | "0.0.0.0" | "::" => default_host.to_string(),
                        h => h.to_string(),
                    },
                    port: l.port,
                })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn l(name: &str, host: &str, port: u16) -> KafkaListener {
        KafkaListener {
            name: name.into(),
            host: host.into(),
            port,
        }
    }

    #[test]
    fn parses_lists() {
        assert_eq!(
            parse_listeners("PLAINTEXT://0.0.0.0:9092, external://[::1]:19092").unwrap(),
            vec![l("PLAINTEXT", "0.0.0.0", 9092), l("EXTERNAL", "::1", 19092)]
        );
        assert_eq!(parse_listeners("").unwrap(), vec![]);
        assert_eq!(
            parse_listeners("PLAINTEXT://:9092").unwrap(),
            vec![l("PLAINTEXT", "", 9092)]
        );
    }

    #[test]
    fn refuses_bad_lists() {
        for (s, want) in [
            ("0.0.0.0:9092", "expected NAME://host:port"),
            ("PLAIN TEXT://h:1", "invalid listener name"),
            ("PLAINTEXT://h:port", "invalid port"),
            ("PLAINTEXT://h:99999", "invalid port"),
            ("A://h:1,a://h:2", "appears twice"),
        ] {
            let err = parse_listeners(s).unwrap_err().to_string();
            assert!(err.contains(want), "{s}: {err}");
        }
    }

    #[test]
    fn advertised_defaults_and_overrides() {
        let ls = vec![
            l("PLAINTEXT", "0.0.0.0", 9092),
            l("EXTERNAL", "127.0.0.1", 19092),
        ];
        assert_eq!(
            advertised(&ls, &[l("EXTERNAL", "localhost", 9092)], "kavka-1").unwrap(),
            vec![
                l("PLAINTEXT", "kavka-1", 9092),
                l("EXTERNAL", "localhost", 9092)
            ]
        );
        assert_eq!(
            advertised(&ls, &[l("OTHER", "h", 1)], "x").unwrap_err(),
            ListenerError::NotListening("OTHER".into())
        );
    }

    #[test]
    fn security_protocols_come_from_the_map_or_the_name() {
        let ls = parse_listeners(
            "PLAINTEXT://:9092,SASL_PLAINTEXT://:9093,EXTERNAL://:9094,CLIENTS://:9095",
        )
        .unwrap();
        let got = security_protocols(&ls, "clients:SASL_SSL,external:ssl").unwrap();
        use SecurityProtocol::*;
        assert_eq!(
            got.iter().map(|(_, p)| *p).collect::<Vec<_>>(),
            vec![Plaintext, SaslPlaintext, Ssl, SaslSsl]
        );
        // (map) -> error words
        for (map, words) in [
            ("CLIENTS", "expected NAME:PROTOCOL"),
            ("CLIENTS:KERBEROS", "unknown security protocol 'KERBEROS'"),
        ] {
            let e = security_protocols(&ls, map).unwrap_err().to_string();
            assert!(e.contains(words), "{map}: {e}");
        }
        let tls = parse_listeners("SSL://:9093").unwrap();
        assert_eq!(security_protocols(&tls, "").unwrap()[0].1, Ssl);
    }
}
