//! PHP-style query strings: `parse_str` into an ordered tree, `http_build_query` (Symfony's
//! normalised `links.self`) and `UrlHelper::buildQuery` (JSON:API pager links).

#[derive(Clone, Debug, PartialEq)]
pub enum Q {
    Str(String),
    Map(Vec<(String, Q)>),
}

impl Q {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Q::Str(s) => Some(s),
            Q::Map(_) => None,
        }
    }
    pub fn get(&self, key: &str) -> Option<&Q> {
        match self {
            Q::Map(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            Q::Str(_) => None,
        }
    }
    pub fn entries(&self) -> &[(String, Q)] {
        match self {
            Q::Map(m) => m,
            Q::Str(_) => &[],
        }
    }
}

pub fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// PHP `urldecode`: `+` is a space, `%XX` decoded, invalid escapes kept literally.
pub fn urldecode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < b.len() => match (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                }
                _ => {
                    out.push(b'%');
                    i += 1;
                }
            },
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// PHP `rawurlencode` (RFC 3986 unreserved characters are kept).
pub fn rawurlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' || b == b'~' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{:02X}", b));
        }
    }
    out
}

fn next_index(m: &[(String, Q)]) -> String {
    let mut max: i64 = -1;
    for (k, _) in m {
        if let Ok(n) = k.parse::<i64>() {
            if n > max {
                max = n;
            }
        }
    }
    (max + 1).to_string()
}

fn insert(map: &mut Vec<(String, Q)>, path: &[Option<String>], value: String) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    let key = match first {
        Some(k) => k.clone(),
        None => next_index(map),
    };
    if rest.is_empty() {
        if let Some(slot) = map.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = Q::Str(value);
        } else {
            map.push((key, Q::Str(value)));
        }
        return;
    }
    let pos = match map.iter().position(|(k, _)| *k == key) {
        Some(p) => {
            if !matches!(map[p].1, Q::Map(_)) {
                map[p].1 = Q::Map(Vec::new());
            }
            p
        }
        None => {
            map.push((key, Q::Map(Vec::new())));
            map.len() - 1
        }
    };
    if let Q::Map(ref mut inner) = map[pos].1 {
        insert(inner, rest, value);
    }
}

/// PHP `parse_str` semantics (enough of them): bracketed keys build nested arrays, `[]` appends,
/// an unmatched `[` or a `.`/space in the top-level name becomes `_`.
pub fn parse_query(qs: &str) -> Vec<(String, Q)> {
    let mut root: Vec<(String, Q)> = Vec::new();
    for part in qs.split('&') {
        if part.is_empty() {
            continue;
        }
        let (k, v) = match part.find('=') {
            Some(i) => (&part[..i], &part[i + 1..]),
            None => (part, ""),
        };
        let key = urldecode(k);
        let value = urldecode(v);
        let key = key.trim_start_matches(' ');
        if key.is_empty() {
            continue;
        }
        // Split "a[b][c]" into the base and segments.
        let (base, segs) = split_key(key);
        if base.is_empty() {
            continue;
        }
        let mut path: Vec<Option<String>> = vec![Some(base)];
        path.extend(segs);
        insert(&mut root, &path, value);
    }
    root
}

fn split_key(key: &str) -> (String, Vec<Option<String>>) {
    let Some(open) = key.find('[') else {
        return (key.replace(['.', ' '], "_"), Vec::new());
    };
    // Only bracketed when a matching ']' follows.
    if !key[open..].contains(']') {
        let mut base = key.replace(['.', ' '], "_");
        // The unmatched '[' itself becomes '_'.
        base = base.replacen('[', "_", 1);
        return (base, Vec::new());
    }
    let base = key[..open].replace(['.', ' '], "_");
    let mut segs = Vec::new();
    let mut rest = &key[open..];
    while let Some(stripped) = rest.strip_prefix('[') {
        match stripped.find(']') {
            Some(close) => {
                let seg = &stripped[..close];
                segs.push(if seg.is_empty() {
                    None
                } else {
                    Some(seg.to_string())
                });
                rest = &stripped[close + 1..];
            }
            None => break,
        }
    }
    (base, segs)
}

fn build(out: &mut Vec<String>, prefix: &str, v: &Q, pager: bool) {
    match v {
        Q::Str(s) => {
            let mut enc = rawurlencode(s);
            if pager {
                enc = enc.replace("%2F", "/");
            }
            out.push(format!("{prefix}={enc}"));
        }
        Q::Map(m) => {
            for (k, x) in m {
                let key = format!("{prefix}%5B{}%5D", rawurlencode(k));
                build(out, &key, x, pager);
            }
        }
    }
}

/// `http_build_query($q, '', '&', PHP_QUERY_RFC3986)` after Symfony's top-level `ksort`.
pub fn normalized_query(q: &[(String, Q)]) -> String {
    let mut sorted: Vec<&(String, Q)> = q.iter().collect();
    sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    let mut out = Vec::new();
    for (k, v) in sorted {
        build(&mut out, &rawurlencode(k), v, false);
    }
    out.join("&")
}

/// Drupal's `UrlHelper::buildQuery` (original order, `/` left unescaped in values).
pub fn pager_query(q: &[(String, Q)]) -> String {
    let mut out = Vec::new();
    for (k, v) in q {
        build(&mut out, &rawurlencode(k), v, true);
    }
    out.join("&")
}

/// The query with `page` replaced by `{offset, limit}` (kept in place if present, else appended).
pub fn with_page(q: &[(String, Q)], offset: i64, limit: i64) -> Vec<(String, Q)> {
    let page = Q::Map(vec![
        ("offset".to_string(), Q::Str(offset.to_string())),
        ("limit".to_string(), Q::Str(limit.to_string())),
    ]);
    let mut out: Vec<(String, Q)> = q.to_vec();
    if let Some(slot) = out.iter_mut().find(|(k, _)| k == "page") {
        slot.1 = page;
    } else {
        out.push(("page".to_string(), page));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_and_appends() {
        let q = parse_query(
            "filter[n][condition][path]=name&filter[n][condition][value][]=alice&filter[n][condition][value][]=bob",
        );
        assert_eq!(
            normalized_query(&q),
            "filter%5Bn%5D%5Bcondition%5D%5Bpath%5D=name&filter%5Bn%5D%5Bcondition%5D%5Bvalue%5D%5B0%5D=alice&filter%5Bn%5D%5Bcondition%5D%5Bvalue%5D%5B1%5D=bob"
        );
    }

    #[test]
    fn self_link_sorts_top_level() {
        let q = parse_query("sort=-name&fields[user--user]=name,mail");
        assert_eq!(
            normalized_query(&q),
            "fields%5Buser--user%5D=name%2Cmail&sort=-name"
        );
        let q = parse_query("filter%5Bname%5D=Zo%C3%AB%20x&page[offset]=2&page[limit]=2");
        assert_eq!(
            normalized_query(&q),
            "filter%5Bname%5D=Zo%C3%AB%20x&page%5Boffset%5D=2&page%5Blimit%5D=2"
        );
    }

    #[test]
    fn pager_keeps_order_and_page_position() {
        let q = parse_query("page[limit]=100&fields[user--user]=name");
        assert_eq!(
            pager_query(&with_page(&q, 50, 50)),
            "page%5Boffset%5D=50&page%5Blimit%5D=50&fields%5Buser--user%5D=name"
        );
        let q = parse_query("fields[user--user]=name");
        assert_eq!(
            pager_query(&with_page(&q, 50, 50)),
            "fields%5Buser--user%5D=name&page%5Boffset%5D=50&page%5Blimit%5D=50"
        );
    }

    #[test]
    fn urldecode_handles_plus_and_bad_escapes() {
        assert_eq!(urldecode("a+b%20c%zz%4"), "a b c%zz%4");
    }
}
