//! A tiny HTTP/1.1 GET over a tokio `TcpStream` (for the nodes' metrics and health
//! endpoints), and a checker of Prometheus' text exposition format that returns the
//! samples it read.
//!
//! The client sends `Connection: close` and reads to the end, so it needs no chunked
//! decoding unless the server chunks anyway (handled). Every call is bounded in time.

use anyhow::{Context, bail};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One answer: the status code, the headers (names lower-cased) and the body.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: BTreeMap<String, String>,
    pub body: String,
}

/// GETs `path` from `addr` (host:port) within `deadline`.
pub async fn http_get(addr: &str, path: &str, deadline: Duration) -> anyhow::Result<HttpResponse> {
    http_get_with(addr, path, &[], deadline).await
}

/// [`http_get`] with extra request headers (`("Authorization", "Basic ...")`).
pub async fn http_get_with(
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    deadline: Duration,
) -> anyhow::Result<HttpResponse> {
    tokio::time::timeout(deadline, async {
        let mut s = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        let req =
            format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await?;
        parse_response(&raw)
    })
    .await
    .with_context(|| format!("GET {path} from {addr}: no answer within {deadline:?}"))?
}

fn parse_response(raw: &[u8]) -> anyhow::Result<HttpResponse> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("no end of the response head")?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line {status_line:?}"))?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut body: &str) -> anyhow::Result<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n").context("truncated chunk size")?;
        let n = usize::from_str_radix(size.trim(), 16).context("bad chunk size")?;
        if n == 0 {
            return Ok(out);
        }
        out.push_str(rest.get(..n).context("truncated chunk")?);
        body = rest.get(n + 2..).context("truncated chunk end")?;
    }
}

/// One sample of a Prometheus exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// The samples of an exposition, checked line by line against the text format
/// (version 0.0.4): `# HELP name text`, `# TYPE name kind` (one per family, before its
/// samples), other comments, blank lines, and samples `name{label="value",...} value
/// [timestamp]` with valid names, escapes and numbers; histogram samples are
/// `_bucket` (with `le`), `_sum` and `_count` of their family. The error names the line.
pub fn parse_prometheus(text: &str) -> Result<Vec<Sample>, String> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_samples: std::collections::BTreeSet<String> = Default::default();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let at = |why: &str| format!("line {}: {why}: {line:?}", n + 1);
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let rest = rest.trim_start();
            if let Some(r) = rest.strip_prefix("HELP ") {
                let name = r.split(' ').next().unwrap_or_default();
                if !metric_name(name) {
                    return Err(at("bad metric name in HELP"));
                }
            } else if let Some(r) = rest.strip_prefix("TYPE ") {
                let mut parts = r.split_whitespace();
                let (Some(name), Some(kind), None) = (parts.next(), parts.next(), parts.next())
                else {
                    return Err(at("TYPE wants a name and a kind"));
                };
                if !metric_name(name) {
                    return Err(at("bad metric name in TYPE"));
                }
                if !["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind) {
                    return Err(at("unknown metric kind"));
                }
                if types.insert(name.to_string(), kind.to_string()).is_some() {
                    return Err(at("a second TYPE for the family"));
                }
                if seen_samples.contains(name) {
                    return Err(at("TYPE after the family's samples"));
                }
            }
            continue;
        }
        let sample = parse_sample(line).map_err(|e| at(&e))?;
        let family = family_of(&sample.name, &types);
        if let Some(kind) = types.get(&family) {
            let suffix = &sample.name[family.len()..];
            let ok = match kind.as_str() {
                "histogram" => match suffix {
                    "_bucket" => sample.labels.contains_key("le"),
                    "_sum" | "_count" => true,
                    _ => false,
                },
                "summary" => matches!(suffix, "" | "_sum" | "_count"),
                _ => suffix.is_empty(),
            };
            if !ok {
                return Err(at(&format!("not a sample of a {kind}")));
            }
        }
        seen_samples.insert(family);
        out.push(sample);
    }
    Ok(out)
}

/// The family a sample belongs to: itself, or a typed histogram/summary it suffixes.
fn family_of(name: &str, types: &BTreeMap<String, String>) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && matches!(
                types.get(base).map(String::as_str),
                Some("histogram" | "summary")
            )
        {
            return base.to_string();
        }
    }
    name.to_string()
}

fn metric_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_' || f == ':')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_' || x == ':')
}

fn label_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next()
        .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
        && c.all(|x| x.is_ascii_alphanumeric() || x == '_')
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !metric_name(name) {
        return Err("bad metric name".into());
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(r) = rest.strip_prefix('{') {
        let mut chars = r.char_indices().peekable();
        let consumed: usize;
        loop {
            // label name
            let start = match chars.peek() {
                Some((_, '}')) => {
                    let (i, _) = chars.next().ok_or("unterminated labels")?;
                    consumed = i + 1;
                    break;
                }
                Some((i, _)) => *i,
                None => return Err("unterminated labels".into()),
            };
            let mut eq = None;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    eq = Some(i);
                    break;
                }
            }
            let eq = eq.ok_or("label without '='")?;
            let lname = &r[start..eq];
            if !label_name(lname) {
                return Err(format!("bad label name {lname:?}"));
            }
            if chars.next().map(|(_, c)| c) != Some('"') {
                return Err("label value not quoted".into());
            }
            let mut value = String::new();
            loop {
                match chars.next().map(|(_, c)| c) {
                    Some('\\') => match chars.next().map(|(_, c)| c) {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        _ => return Err("bad escape in a label value".into()),
                    },
                    Some('"') => break,
                    Some('\n') | None => return Err("unterminated label value".into()),
                    Some(c) => value.push(c),
                }
            }
            if labels.insert(lname.to_string(), value).is_some() {
                return Err(format!("label {lname} twice"));
            }
            match chars.next() {
                Some((_, ',')) => {}
                Some((i, '}')) => {
                    consumed = i + 1;
                    break;
                }
                _ => return Err("expected ',' or '}' after a label".into()),
            }
        }
        rest = &r[consumed..];
    }
    let mut parts = rest.split_whitespace();
    if !rest.starts_with(' ') {
        return Err("no space before the value".into());
    }
    let value = parts
        .next()
        .and_then(parse_value)
        .ok_or("bad or missing value")?;
    if let Some(ts) = parts.next()
        && ts.parse::<i64>().is_err()
    {
        return Err("bad timestamp".into());
    }
    if parts.next().is_some() {
        return Err("trailing text".into());
    }
    Ok(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

/// The samples named `name` whose labels include every pair of `labels`.
pub fn samples<'a>(all: &'a [Sample], name: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    all.iter()
        .filter(|s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .collect()
}

/// The one value of `name` with `labels`; an error naming it if there is none or several.
pub fn value(all: &[Sample], name: &str, labels: &[(&str, &str)]) -> anyhow::Result<f64> {
    match samples(all, name, labels).as_slice() {
        [one] => Ok(one.value),
        [] => bail!("no sample {name}{labels:?}"),
        many => bail!("{} samples {name}{labels:?}", many.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_exposition_parses() {
        let text = "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"uote\\\\ \\n\"} 3\n\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\nh_count 2\nplain -1.5e3 1700000000\nnan NaN\n";
        let s = parse_prometheus(text).unwrap();
        assert_eq!(s.len(), 7);
        assert_eq!(s[0].labels["y"], "q\"uote\\ \n");
        assert_eq!(value(&s, "h_bucket", &[("le", "+Inf")]).unwrap(), 2.0);
        assert_eq!(value(&s, "plain", &[]).unwrap(), -1500.0);
    }

    #[test]
    fn bad_lines_are_named() {
        for (text, why) in [
            ("1abc 1\n", "bad metric name"),
            ("a{b=1} 1\n", "not quoted"),
            ("a{b=\"1\" 1\n", "expected ','"),
            ("a{b=\"1\"}1\n", "no space"),
            ("a one\n", "bad or missing value"),
            ("a 1 2 3\n", "trailing"),
            ("# TYPE a counter\n# TYPE a gauge\n", "second TYPE"),
            ("a 1\n# TYPE a counter\n", "TYPE after"),
            ("# TYPE a wrong\n", "unknown metric kind"),
            (
                "# TYPE h histogram\nh_bucket 1\n",
                "not a sample of a histogram",
            ),
            ("a{b=\"x\",b=\"y\"} 1\n", "twice"),
        ] {
            let e = parse_prometheus(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }

    #[test]
    fn responses_parse_plain_and_chunked() {
        let r = parse_response(
            b"HTTP/1.1 404 Not Found\r\ncontent-type: text/plain\r\n\r\nno such path\n",
        )
        .unwrap();
        assert_eq!((r.status, r.body.as_str()), (404, "no such path\n"));
        let r = parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!(r.body, "abcde");
    }
}
