//! AWS Signature Version 4 request signing, and where the AWS CLI finds credentials, the
//! region and the endpoint: environment variables, then the shared credentials and config
//! files (`~/.aws/credentials`, `~/.aws/config`).
//!
//! Only static keys are read from profiles (`aws_access_key_id`, `aws_secret_access_key`,
//! `aws_session_token`); role assumption, SSO, `credential_process` and instance metadata are
//! not supported.

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const ALGORITHM: &str = "AWS4-HMAC-SHA256";

#[derive(Clone, Debug)]
pub struct Credentials {
    pub access_key: String,
    pub secret_key: String,
    pub session_token: Option<String>,
}

/// Signs a request: returns the headers to add (`authorization`, `x-amz-date`,
/// `x-amz-content-sha256`, and `x-amz-security-token` when there is a session token), all of
/// them but `authorization` signed too.
///
/// `headers` are the other headers that will be sent and must be signed (at least host and
/// content-type); names are lower-cased and values trimmed (runs of whitespace inside made one
/// space) here as SigV4 asks, and any of the four headers above among them is ignored, since
/// the returned ones replace it. `path` is the path as sent (percent-encoded or not): each
/// segment is URI-encoded again, as AWS does for every service but S3, after removing `.`,
/// `..` and empty segments. `query` is the query string as sent, without `?`: parameters are
/// percent-decoded, re-encoded and sorted. `amz_date` is `YYYYMMDD'T'HHMMSS'Z'`.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    creds: &Credentials,
    region: &str,
    service: &str,
    method: &str,
    path: &str,
    query: &str,
    headers: &[(String, String)],
    body: &[u8],
    amz_date: &str,
) -> Vec<(String, String)> {
    let request = Request {
        method,
        path,
        query,
        headers,
        body,
    };
    sign_request(creds, region, service, &request, amz_date, true)
}

/// What is signed of a request.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
    body: &'a [u8],
}

/// Headers a signer adds itself.
const ADDED: [&str; 4] = [
    "authorization",
    "x-amz-date",
    "x-amz-content-sha256",
    "x-amz-security-token",
];

/// `sign`, with `x-amz-content-sha256` optional: the AWS test suite's vectors and the IAM
/// example predate it (it is only required by S3, and harmless elsewhere).
fn sign_request(
    creds: &Credentials,
    region: &str,
    service: &str,
    request: &Request<'_>,
    amz_date: &str,
    content_sha256: bool,
) -> Vec<(String, String)> {
    let payload_hash = hex(&Sha256::digest(request.body));
    let mut added = vec![("x-amz-date".to_string(), amz_date.to_string())];
    if content_sha256 {
        added.push(("x-amz-content-sha256".to_string(), payload_hash.clone()));
    }
    if let Some(token) = &creds.session_token {
        added.push(("x-amz-security-token".to_string(), token.clone()));
    }
    let mut all: Vec<(String, String)> = request
        .headers
        .iter()
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.clone()))
        .filter(|(k, _)| !ADDED.contains(&k.as_str()))
        .collect();
    all.extend(added.iter().cloned());
    let (canonical, signed_headers) = canonical_request(request, &all, &payload_hash);
    let date = amz_date.get(..8).unwrap_or(amz_date);
    let scope = format!("{date}/{region}/{service}/aws4_request");
    let to_sign = string_to_sign(amz_date, &scope, &canonical);
    let key = signing_key(&creds.secret_key, date, region, service);
    let signature = hex(&hmac(&key, to_sign.as_bytes()));
    let authorization = format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        creds.access_key
    );
    let mut out = vec![("authorization".to_string(), authorization)];
    out.extend(added);
    out
}

/// The canonical request, and the signed headers list. `headers` are all signed.
fn canonical_request(
    request: &Request<'_>,
    headers: &[(String, String)],
    payload_hash: &str,
) -> (String, String) {
    // Names lower-cased and sorted (stably: values of a repeated header keep their order and
    // are joined with commas), values trimmed with inner whitespace runs made one space.
    let mut headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            let v = v.split_whitespace().collect::<Vec<_>>().join(" ");
            (k.trim().to_ascii_lowercase(), v)
        })
        .collect();
    headers.sort_by(|a, b| a.0.cmp(&b.0));
    let mut merged: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        match merged.last_mut() {
            Some((last, values)) if *last == k => {
                values.push(',');
                values.push_str(&v);
            }
            _ => merged.push((k, v)),
        }
    }
    let canonical_headers: String = merged.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = merged
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical = format!(
        "{}\n{}\n{}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        request.method.to_ascii_uppercase(),
        canonical_uri(request.path),
        canonical_query(request.query),
    );
    (canonical, signed_headers)
}

fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
    let hash = hex(&Sha256::digest(canonical_request.as_bytes()));
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n{hash}")
}

fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac(&k_date, region.as_bytes());
    let k_service = hmac(&k_region, service.as_bytes());
    hmac(&k_service, b"aws4_request")
}

fn hmac(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// RFC 3986 percent-encoding of everything but the unreserved characters (and `/` if asked).
fn uri_encode(s: &[u8], keep_slash: bool, out: &mut String) {
    for &b in s {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else if b == b'/' && keep_slash {
            out.push('/');
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && let Some(v) = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// The path with dot segments and empty segments removed (a trailing slash kept), each
/// segment URI-encoded.
fn canonical_uri(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::from("/");
    uri_encode(segments.join("/").as_bytes(), true, &mut out);
    if path.ends_with('/') && !segments.is_empty() {
        out.push('/');
    }
    out
}

/// Parameters decoded, re-encoded, and sorted by name then value.
fn canonical_query(query: &str) -> String {
    let mut params: Vec<(String, String)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let mut key = String::new();
            let mut value = String::new();
            uri_encode(&percent_decode(k), false, &mut key);
            uri_encode(&percent_decode(v), false, &mut value);
            (key, value)
        })
        .collect();
    params.sort();
    params
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// `YYYYMMDD'T'HHMMSS'Z'` from epoch milliseconds.
pub fn amz_date(epoch_ms: i64) -> String {
    let secs = epoch_ms.div_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// (year, month, day) of a day count since 1970-01-01 (`clock::civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let (y, m, d) = crate::clock::civil_from_days(days);
    (y, m.into(), d.into())
}

// ---- Where the AWS CLI looks ------------------------------------------------------------

type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// An environment variable, trimmed; empty counts as unset.
fn var(env: Env<'_>, name: &str) -> Option<String> {
    env(name)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Where the AWS CLI looks: env AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN,
/// then the profile (explicit name, else AWS_PROFILE, else "default") in
/// AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials, section `[name]`) and then
/// AWS_CONFIG_FILE (default ~/.aws/config, section `[profile name]`, or `[default]`).
///
/// As in the AWS CLI, an explicit profile (`--profile`) skips the environment's keys: they
/// win only over a profile named by AWS_PROFILE or the default one. Returns None if nothing
/// is found. `env` is injected for tests.
pub fn resolve_credentials(
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<Credentials> {
    if profile.map(str::trim).is_none_or(str::is_empty)
        && let (Some(access_key), Some(secret_key)) = (
            var(env, "AWS_ACCESS_KEY_ID"),
            var(env, "AWS_SECRET_ACCESS_KEY"),
        )
    {
        let session_token =
            var(env, "AWS_SESSION_TOKEN").or_else(|| var(env, "AWS_SECURITY_TOKEN"));
        return Some(Credentials {
            access_key,
            secret_key,
            session_token,
        });
    }
    let name = profile_name(profile, env);
    let from = |section: Option<&Section>| {
        let section = section?;
        let get = |k: &str| section.get(k).filter(|v| !v.is_empty()).cloned();
        Some(Credentials {
            access_key: get("aws_access_key_id")?,
            secret_key: get("aws_secret_access_key")?,
            session_token: get("aws_session_token").or_else(|| get("aws_security_token")),
        })
    };
    let credentials = read_profile_file(env, "AWS_SHARED_CREDENTIALS_FILE", "credentials");
    if let Some(c) = credentials.as_ref().and_then(|f| from(f.get(&name))) {
        return Some(c);
    }
    let config = read_profile_file(env, "AWS_CONFIG_FILE", "config")?;
    from(config_profile(&config, &name))
}

/// Region: explicit, else AWS_REGION, AWS_DEFAULT_REGION, else the profile's `region` in the
/// config file.
pub fn resolve_region(
    explicit: Option<&str>,
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<String> {
    if let Some(r) = explicit.map(str::trim).filter(|r| !r.is_empty()) {
        return Some(r.to_string());
    }
    var(env, "AWS_REGION")
        .or_else(|| var(env, "AWS_DEFAULT_REGION"))
        .or_else(|| profile_setting(profile, env, "region"))
}

/// Endpoint for a service id ("kinesis", "monitoring"): explicit, else
/// AWS_ENDPOINT_URL_<SERVICE> (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL_CLOUDWATCH for
/// monitoring), else AWS_ENDPOINT_URL, else the service's `endpoint_url` in the profile's
/// `services` section, else the profile's `endpoint_url`, else
/// `https://{service}.{region}.amazonaws.com` (`.amazonaws.com.cn` in China). With
/// AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true (or `ignore_configured_endpoint_urls = true` in the
/// profile) the environment's and the profile's endpoints are skipped.
pub fn resolve_endpoint(
    explicit: Option<&str>,
    service: &str,
    region: &str,
    profile: Option<&str>,
    env: &dyn Fn(&str) -> Option<String>,
) -> String {
    if let Some(e) = explicit.map(str::trim).filter(|e| !e.is_empty()) {
        return e.to_string();
    }
    if let Some(e) = configured_endpoint(service, profile, env) {
        return e;
    }
    let suffix = if region.starts_with("cn-") {
        "amazonaws.com.cn"
    } else {
        "amazonaws.com"
    };
    format!("https://{service}.{region}.{suffix}")
}

fn configured_endpoint(service: &str, profile: Option<&str>, env: Env<'_>) -> Option<String> {
    let is_true = |v: Option<String>| v.is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if is_true(var(env, "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")) {
        return None;
    }
    // The service id as AWS names it: the signing name "monitoring" is CloudWatch's.
    let id = match service.to_ascii_lowercase().as_str() {
        "monitoring" => "cloudwatch".to_string(),
        s => s.replace([' ', '-'], "_"),
    };
    let service_var = format!("AWS_ENDPOINT_URL_{}", id.to_ascii_uppercase());
    if let Some(e) = var(env, &service_var).or_else(|| var(env, "AWS_ENDPOINT_URL")) {
        return Some(e);
    }
    let config = read_profile_file(env, "AWS_CONFIG_FILE", "config")?;
    let section = config_profile(&config, &profile_name(profile, env))?;
    if is_true(section.get("ignore_configured_endpoint_urls").cloned()) {
        return None;
    }
    let in_services = section
        .get("services")
        .and_then(|name| config.get(&format!("services {name}")))
        .and_then(|services| services.get(&format!("{id}.endpoint_url")));
    in_services
        .or_else(|| section.get("endpoint_url"))
        .filter(|e| !e.is_empty())
        .cloned()
}

fn profile_name(explicit: Option<&str>, env: Env<'_>) -> String {
    explicit
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .or_else(|| var(env, "AWS_PROFILE"))
        .unwrap_or_else(|| "default".to_string())
}

/// A setting of the profile in the config file.
fn profile_setting(profile: Option<&str>, env: Env<'_>, key: &str) -> Option<String> {
    let config = read_profile_file(env, "AWS_CONFIG_FILE", "config")?;
    config_profile(&config, &profile_name(profile, env))?
        .get(key)
        .filter(|v| !v.is_empty())
        .cloned()
}

/// A profile in the config file: `[profile name]`, or for the default one also `[default]`.
fn config_profile<'a>(config: &'a ProfileFile, name: &str) -> Option<&'a Section> {
    config.get(&format!("profile {name}")).or_else(|| {
        if name == "default" {
            config.get("default")
        } else {
            None
        }
    })
}

type Section = HashMap<String, String>;
type ProfileFile = HashMap<String, Section>;

/// Reads the file named by `var`, else `~/.aws/{default_name}`. None if there is none.
fn read_profile_file(env: Env<'_>, var_name: &str, default_name: &str) -> Option<ProfileFile> {
    let home = || {
        var(env, "HOME")
            .or_else(|| var(env, "USERPROFILE"))
            .or_else(|| {
                Some(format!(
                    "{}{}",
                    var(env, "HOMEDRIVE")?,
                    var(env, "HOMEPATH")?
                ))
            })
    };
    let path = match var(env, var_name) {
        Some(p) if p == "~" => home()?,
        Some(p) => match p.strip_prefix("~/").or_else(|| p.strip_prefix("~\\")) {
            Some(rest) => format!("{}/{rest}", home()?),
            None => p,
        },
        None => format!("{}/.aws/{default_name}", home()?),
    };
    let bytes = std::fs::read(path).ok()?;
    Some(parse_profile_file(&String::from_utf8_lossy(&bytes)))
}

/// Parses a shared config or credentials file: `[section]` headers, `key = value` properties
/// (keys lower-cased; `:` accepted when there is no `=`), full-line comments starting with `#`
/// or `;`, and comments after a value when preceded by whitespace. An indented line continues
/// the property above it; under a property with an empty value (`s3 =`, or a service in a
/// `[services name]` section), indented `key = value` lines are sub-properties, stored as
/// `parent.key`. Sections named twice are merged, later values winning.
fn parse_profile_file(text: &str) -> ProfileFile {
    let mut file = ProfileFile::new();
    let mut section: Option<String> = None;
    // The last top-level property in the current section, and whether it opened sub-properties.
    let mut property: Option<(String, bool)> = None;
    for raw in text.trim_start_matches('\u{FEFF}').lines() {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if trimmed.starts_with('[') {
            property = None;
            section = trimmed.find(']').and_then(|end| {
                let rest = trimmed[end + 1..].trim_start();
                let name = normalize_section(&trimmed[1..end]);
                let well_formed = rest.is_empty() || rest.starts_with(['#', ';']);
                (well_formed && !name.is_empty()).then_some(name)
            });
            if let Some(name) = &section {
                file.entry(name.clone()).or_default();
            }
            continue;
        }
        let Some(current) = section.as_ref().and_then(|s| file.get_mut(s)) else {
            continue;
        };
        let indented = raw.starts_with([' ', '\t']);
        if indented && let Some((parent, nested)) = &property {
            if *nested {
                if let Some((k, v)) = split_property(trimmed) {
                    current.insert(format!("{parent}.{k}"), v);
                }
            } else if let Some(value) = current.get_mut(parent) {
                value.push('\n');
                value.push_str(&strip_comment(trimmed));
            }
            continue;
        }
        property = split_property(trimmed).map(|(k, v)| {
            let nested = v.is_empty();
            current.insert(k.clone(), v);
            (k, nested)
        });
    }
    file
}

/// `profile  name` → `profile name` (and the same for `services` and `sso-session`).
fn normalize_section(name: &str) -> String {
    let name = name.trim();
    for prefix in ["profile", "services", "sso-session"] {
        if let Some(rest) = name.strip_prefix(prefix)
            && rest.starts_with([' ', '\t'])
        {
            return format!("{prefix} {}", rest.trim());
        }
    }
    name.to_string()
}

fn split_property(line: &str) -> Option<(String, String)> {
    let (k, v) = line.split_once('=').or_else(|| line.split_once(':'))?;
    let k = k.trim().to_ascii_lowercase();
    (!k.is_empty()).then(|| (k, strip_comment(v)))
}

/// A value without a trailing ` # comment` or ` ; comment`, trimmed.
fn strip_comment(value: &str) -> String {
    let b = value.as_bytes();
    let end = (1..b.len())
        .find(|&i| matches!(b[i], b'#' | b';') && b[i - 1].is_ascii_whitespace())
        .unwrap_or(b.len());
    value[..end].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicU32, Ordering};

    const SUITE_KEY: &str = "AKIDEXAMPLE";
    const SUITE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    const SUITE_DATE: &str = "20150830T123600Z";
    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const STS_TOKEN: &str = "AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwd\
        QWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBm\
        Upp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0r\
        KwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj\
        2ICCR/oLxBA==";

    fn creds(key: &str, secret: &str, token: Option<&str>) -> Credentials {
        Credentials {
            access_key: key.into(),
            secret_key: secret.into(),
            session_token: token.map(Into::into),
        }
    }

    fn headers(h: &[(&str, &str)]) -> Vec<(String, String)> {
        h.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn header<'a>(out: &'a [(String, String)], name: &str) -> &'a str {
        out.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap()
    }

    /// One vector of the AWS SigV4 test suite (aws-sig-v4-test-suite, 2015-08-30): the request
    /// as given there (its X-Amz-Date header passed as `amz_date`), the expected canonical
    /// request and the expected Authorization header.
    struct Vector {
        name: &'static str,
        method: &'static str,
        path: &'static str,
        query: &'static str,
        headers: &'static [(&'static str, &'static str)],
        body: &'static str,
        token: Option<&'static str>,
        creq: &'static str,
        signed: &'static str,
        signature: &'static str,
    }

    const HOST: (&str, &str) = ("Host", "example.amazonaws.com");

    const SUITE: &[Vector] = &[
        Vector {
            name: "get-vanilla",
            method: "GET",
            path: "/",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "post-vanilla",
            method: "POST",
            path: "/",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "POST\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b",
        },
        Vector {
            name: "post-vanilla-query",
            method: "POST",
            path: "/",
            query: "Param1=value1",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "POST\n/\nParam1=value1\nhost:example.amazonaws.com\n\
                   x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "28038455d6de14eafc1f9222cf5aa6f1a96197d7deb8263271d420d138af7f11",
        },
        Vector {
            name: "get-vanilla-query-order-key-case",
            method: "GET",
            path: "/",
            query: "Param2=value2&Param1=value1",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\nParam1=value1&Param2=value2\nhost:example.amazonaws.com\n\
                   x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "b97d918cfa904a5beff61c982a1b6f458b799221646efd99d3219ec94cdf2500",
        },
        Vector {
            name: "get-vanilla-query-order-key",
            method: "GET",
            path: "/",
            query: "Param1=value2&Param1=Value1",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\nParam1=Value1&Param1=value2\nhost:example.amazonaws.com\n\
                   x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "eedbc4e291e521cf13422ffca22be7d2eb8146eecf653089df300a15b2382bd1",
        },
        Vector {
            name: "get-vanilla-query-order-value",
            method: "GET",
            path: "/",
            query: "Param1=value2&Param1=value1",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\nParam1=value1&Param1=value2\nhost:example.amazonaws.com\n\
                   x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "5772eed61e12b33fae39ee5e7012498b51d56abc0abb7c60486157bd471c4694",
        },
        Vector {
            name: "get-vanilla-query-unreserved",
            method: "GET",
            path: "/",
            query: "-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=\
                    -._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\n-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz=\
                   -._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\
                   host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "9c3e54bfcdf0b19771a7f523ee5669cdf59bc7cc0884027167c21bb143a40197",
        },
        Vector {
            name: "get-vanilla-utf8-query",
            method: "GET",
            path: "/",
            query: "\u{1234}=bar",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\n%E1%88%B4=bar\nhost:example.amazonaws.com\n\
                   x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "2cdec8eed098649ff3a119c94853b13c643bcf08f8b0a1d91e12c9027818dd04",
        },
        Vector {
            name: "get-unreserved",
            method: "GET",
            path: "/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/-._~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz\n\n\
                   host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "07ef7494c76fa4850883e2b006601f940f8a34d404d0cfa977f52a65bbf5f24f",
        },
        Vector {
            name: "get-space",
            method: "GET",
            path: "/example space/",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/example%20space/\n\nhost:example.amazonaws.com\n\
                   x-amz-date:20150830T123600Z\n\nhost;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "652487583200325589f1fba4c7e578f72c47cb61beeca81406b39ddec1366741",
        },
        Vector {
            name: "get-slashes",
            method: "GET",
            path: "//example//",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/example/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "9a624bd73a37c9a373b5312afbebe7a714a789de108f0bdfe846570885f57e84",
        },
        Vector {
            name: "get-slash-pointless-dot",
            method: "GET",
            path: "/./example",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/example\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "ef75d96142cf21edca26f06005da7988e4f8dc83a165a80865db7089db637ec5",
        },
        Vector {
            name: "get-relative-relative",
            method: "GET",
            path: "/example1/example2/../..",
            query: "",
            headers: &[HOST],
            body: "",
            token: None,
            creq: "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   host;x-amz-date\n",
            signed: "host;x-amz-date",
            signature: "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31",
        },
        Vector {
            name: "get-header-key-duplicate",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                HOST,
                ("My-Header1", "value2"),
                ("My-Header1", "value2"),
                ("My-Header1", "value1"),
            ],
            body: "",
            token: None,
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value2,value2,value1\n\
                   x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n",
            signed: "host;my-header1;x-amz-date",
            signature: "c9d5ea9f3f72853aea855b47ea873832890dbdd183b4468f858259531a5138ea",
        },
        Vector {
            name: "get-header-value-order",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                HOST,
                ("My-Header1", "value4"),
                ("My-Header1", "value1"),
                ("My-Header1", "value3"),
                ("My-Header1", "value2"),
            ],
            body: "",
            token: None,
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value4,value1,value3,value2\n\
                   x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n",
            signed: "host;my-header1;x-amz-date",
            signature: "08c7e5a9acfcfeb3ab6b2185e75ce8b1deb5e634ec47601a50643f830c755c01",
        },
        Vector {
            name: "get-header-value-trim",
            method: "GET",
            path: "/",
            query: "",
            headers: &[
                HOST,
                ("My-Header1", " value1"),
                ("My-Header2", " \"a   b   c\""),
            ],
            body: "",
            token: None,
            creq: "GET\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n\
                   my-header2:\"a b c\"\nx-amz-date:20150830T123600Z\n\n\
                   host;my-header1;my-header2;x-amz-date\n",
            signed: "host;my-header1;my-header2;x-amz-date",
            signature: "acc3ed3afb60bb290fc8d2dd0098b9911fcaa05412b367055dee359757a9c736",
        },
        Vector {
            name: "post-header-key-sort",
            method: "POST",
            path: "/",
            query: "",
            headers: &[HOST, ("My-Header1", "value1")],
            body: "",
            token: None,
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:value1\n\
                   x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n",
            signed: "host;my-header1;x-amz-date",
            signature: "c5410059b04c1ee005303aed430f6e6645f61f4dc9e1461ec8f8916fdf18852c",
        },
        Vector {
            name: "post-header-value-case",
            method: "POST",
            path: "/",
            query: "",
            headers: &[HOST, ("My-Header1", "VALUE1")],
            body: "",
            token: None,
            creq: "POST\n/\n\nhost:example.amazonaws.com\nmy-header1:VALUE1\n\
                   x-amz-date:20150830T123600Z\n\nhost;my-header1;x-amz-date\n",
            signed: "host;my-header1;x-amz-date",
            signature: "cdbc9802e29d2942e5e10b5bccfdd67c5f22c7c4e8ae67b53629efa58b974b7d",
        },
        Vector {
            // The suite's request also has a Content-Length, which its signature leaves out.
            name: "post-x-www-form-urlencoded",
            method: "POST",
            path: "/",
            query: "",
            headers: &[("Content-Type", "application/x-www-form-urlencoded"), HOST],
            body: "Param1=value1",
            token: None,
            creq: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded\n\
                   host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   content-type;host;x-amz-date\n",
            signed: "content-type;host;x-amz-date",
            signature: "ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a",
        },
        Vector {
            // "charset=utf8", as in the original suite: some repackagings say "utf-8" and add
            // a Content-Length, which the published signature does not match.
            name: "post-x-www-form-urlencoded-parameters",
            method: "POST",
            path: "/",
            query: "",
            headers: &[
                (
                    "Content-Type",
                    "application/x-www-form-urlencoded; charset=utf8",
                ),
                HOST,
            ],
            body: "Param1=value1",
            token: None,
            creq: "POST\n/\n\ncontent-type:application/x-www-form-urlencoded; charset=utf8\n\
                   host:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
                   content-type;host;x-amz-date\n",
            signed: "content-type;host;x-amz-date",
            signature: "1a72ec8f64bd914b0e42e42607c7fbce7fb2c7465f63e3092b3b0d39fa77a6fe",
        },
        Vector {
            name: "post-sts-header-before",
            method: "POST",
            path: "/",
            query: "",
            headers: &[HOST],
            body: "",
            token: Some(STS_TOKEN),
            creq: "",
            signed: "host;x-amz-date;x-amz-security-token",
            signature: "85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead",
        },
    ];

    #[test]
    fn aws_sig_v4_test_suite() {
        for v in SUITE {
            let hs = headers(v.headers);
            let request = Request {
                method: v.method,
                path: v.path,
                query: v.query,
                headers: &hs,
                body: v.body.as_bytes(),
            };
            let c = creds(SUITE_KEY, SUITE_SECRET, v.token);
            let out = sign_request(&c, "us-east-1", "service", &request, SUITE_DATE, false);
            let expected = format!(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders={}, Signature={}",
                v.signed, v.signature
            );
            assert_eq!(header(&out, "authorization"), expected, "{}", v.name);
            assert_eq!(header(&out, "x-amz-date"), SUITE_DATE, "{}", v.name);
            if !v.creq.is_empty() {
                let mut all = hs.clone();
                all.push(("x-amz-date".into(), SUITE_DATE.into()));
                let payload = hex(&Sha256::digest(v.body.as_bytes()));
                let (creq, signed) = canonical_request(&request, &all, &payload);
                assert_eq!(creq, format!("{}{payload}", v.creq), "{}", v.name);
                assert_eq!(signed, v.signed, "{}", v.name);
            }
        }
    }

    #[test]
    fn suite_string_to_sign() {
        // get-vanilla's .sts.
        let creq = format!(
            "GET\n/\n\nhost:example.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             host;x-amz-date\n{EMPTY_SHA256}"
        );
        assert_eq!(
            string_to_sign(SUITE_DATE, "20150830/us-east-1/service/aws4_request", &creq),
            "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/service/aws4_request\n\
             bb579772317eb040ac9ed261061d46c1f17a8133879d6129b6e1c25292927e63"
        );
    }

    /// The worked example of the AWS General Reference ("Create a signed AWS API request"):
    /// GET https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08.
    #[test]
    fn iam_list_users_documentation_example() {
        let hs = headers(&[
            (
                "content-type",
                "application/x-www-form-urlencoded; charset=utf-8",
            ),
            ("host", "iam.amazonaws.com"),
        ]);
        let request = Request {
            method: "GET",
            path: "/",
            query: "Action=ListUsers&Version=2010-05-08",
            headers: &hs,
            body: b"",
        };
        let mut all = hs.clone();
        all.push(("x-amz-date".into(), SUITE_DATE.into()));
        let (creq, _) = canonical_request(&request, &all, EMPTY_SHA256);
        assert_eq!(
            creq,
            "GET\n/\nAction=ListUsers&Version=2010-05-08\n\
             content-type:application/x-www-form-urlencoded; charset=utf-8\n\
             host:iam.amazonaws.com\nx-amz-date:20150830T123600Z\n\n\
             content-type;host;x-amz-date\n\
             e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex(&Sha256::digest(creq.as_bytes())),
            "f536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59"
        );
        let c = creds(SUITE_KEY, SUITE_SECRET, None);
        let out = sign_request(&c, "us-east-1", "iam", &request, SUITE_DATE, false);
        assert_eq!(
            header(&out, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date, \
             Signature=5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    /// The public `sign` also signs x-amz-content-sha256, as S3 requires: the S3 API
    /// reference's examples ("Signature Calculations for the Authorization Header") check it.
    #[test]
    fn s3_documentation_examples_through_sign() {
        let c = creds(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            None,
        );
        let host = ("host", "examplebucket.s3.amazonaws.com");
        // GET Object.
        let hs = headers(&[host, ("range", "bytes=0-9")]);
        let out = sign(
            &c,
            "us-east-1",
            "s3",
            "GET",
            "/test.txt",
            "",
            &hs,
            b"",
            "20130524T000000Z",
        );
        assert_eq!(
            header(&out, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert_eq!(header(&out, "x-amz-content-sha256"), EMPTY_SHA256);
        // PUT Object, with a body and a path that needs encoding.
        let hs = headers(&[
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            host,
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
        ]);
        let body = b"Welcome to Amazon S3.";
        let out = sign(
            &c,
            "us-east-1",
            "s3",
            "PUT",
            "/test$file.text",
            "",
            &hs,
            body,
            "20130524T000000Z",
        );
        assert_eq!(
            header(&out, "authorization"),
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class, \
             Signature=98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd"
        );
        assert_eq!(
            header(&out, "x-amz-content-sha256"),
            "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
        );
        // GET Bucket lifecycle: a query parameter without a value.
        let hs = headers(&[host]);
        let out = sign(
            &c,
            "us-east-1",
            "s3",
            "GET",
            "/",
            "lifecycle",
            &hs,
            b"",
            "20130524T000000Z",
        );
        assert!(header(&out, "authorization").ends_with(
            "Signature=fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543"
        ));
        // GET Bucket (list objects): parameters out of order.
        let q = "prefix=J&max-keys=2";
        let out = sign(
            &c,
            "us-east-1",
            "s3",
            "GET",
            "/",
            q,
            &hs,
            b"",
            "20130524T000000Z",
        );
        assert!(header(&out, "authorization").ends_with(
            "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
        ));
    }

    #[test]
    fn sign_returns_its_headers_and_replaces_callers_copies() {
        let c = creds("AK", "SK", Some("TOKEN"));
        let hs = headers(&[
            ("Host", "localhost:4567"),
            ("Content-Type", "application/x-amz-json-1.1"),
            ("X-Amz-Target", "Kinesis_20131202.ListStreams"),
            ("X-Amz-Date", "19990101T000000Z"),
            ("Authorization", "stale"),
        ]);
        let out = sign(
            &c,
            "us-east-1",
            "kinesis",
            "POST",
            "/",
            "",
            &hs,
            b"{}",
            SUITE_DATE,
        );
        let names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "authorization",
                "x-amz-date",
                "x-amz-content-sha256",
                "x-amz-security-token"
            ]
        );
        assert_eq!(header(&out, "x-amz-date"), SUITE_DATE);
        assert_eq!(header(&out, "x-amz-security-token"), "TOKEN");
        let auth = header(&out, "authorization");
        assert!(auth.starts_with(
            "AWS4-HMAC-SHA256 Credential=AK/20150830/us-east-1/kinesis/aws4_request, \
             SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;\
             x-amz-security-token;x-amz-target, Signature="
        ));
        // Deterministic, and sensitive to the body.
        let again = sign(
            &c,
            "us-east-1",
            "kinesis",
            "POST",
            "/",
            "",
            &hs,
            b"{}",
            SUITE_DATE,
        );
        assert_eq!(out, again);
        let other = sign(
            &c,
            "us-east-1",
            "kinesis",
            "POST",
            "/",
            "",
            &hs,
            b"{ }",
            SUITE_DATE,
        );
        assert_ne!(header(&other, "authorization"), auth);
        // Without a token, no token header.
        let c = creds("AK", "SK", None);
        let out = sign(
            &c,
            "us-east-1",
            "kinesis",
            "POST",
            "/",
            "",
            &hs,
            b"{}",
            SUITE_DATE,
        );
        assert_eq!(out.len(), 3);
    }

    #[test]
    fn canonical_uri_and_query() {
        assert_eq!(canonical_uri(""), "/");
        assert_eq!(canonical_uri("/"), "/");
        assert_eq!(canonical_uri("/./"), "/");
        assert_eq!(canonical_uri("/example/.."), "/");
        assert_eq!(canonical_uri("/a/../../b"), "/b");
        // An already-encoded path is encoded again, as AWS does outside S3.
        assert_eq!(canonical_uri("/a%20b/c"), "/a%2520b/c");
        assert_eq!(canonical_uri("/\u{1234}"), "/%E1%88%B4");
        assert_eq!(canonical_query(""), "");
        assert_eq!(canonical_query("b=2&a=1&&a"), "a=&a=1&b=2");
        assert_eq!(
            canonical_query("a=1%202&b=x y&c=%zz"),
            "a=1%202&b=x%20y&c=%25zz"
        );
        assert_eq!(canonical_query("k=a+b/c"), "k=a%2Bb%2Fc");
        assert_eq!(canonical_query("Z=1&a=1"), "Z=1&a=1");
    }

    #[test]
    fn amz_date_conversion() {
        assert_eq!(amz_date(0), "19700101T000000Z");
        assert_eq!(amz_date(1_440_938_160_000), "20150830T123600Z");
        assert_eq!(amz_date(1_440_938_160_999), "20150830T123600Z");
        assert_eq!(amz_date(-1), "19691231T235959Z");
        assert_eq!(amz_date(951_782_400_000), "20000229T000000Z");
        assert_eq!(amz_date(951_868_799_000), "20000229T235959Z");
        assert_eq!(amz_date(951_868_800_000), "20000301T000000Z");
        assert_eq!(amz_date(4_107_542_400_000), "21000301T000000Z");
        assert_eq!(amz_date(4_107_456_000_000), "21000228T000000Z");
        assert_eq!(amz_date(1_709_210_096_000), "20240229T123456Z");
        assert_eq!(amz_date(253_402_300_799_000), "99991231T235959Z");
        // The extremes do not panic.
        let _ = amz_date(i64::MIN);
        let _ = amz_date(i64::MAX);
    }

    #[test]
    fn civil_dates_agree_with_a_day_by_day_walk() {
        let (mut y, mut m, mut d) = (1970i64, 1i64, 1i64);
        for days in 0..(200 * 366) {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = [
                31,
                if leap { 29 } else { 28 },
                31,
                30,
                31,
                30,
                31,
                31,
                30,
                31,
                30,
                31,
            ];
            d += 1;
            if d > len[(m - 1) as usize] {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    // ---- Profiles ---------------------------------------------------------------------

    /// A scratch directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> TempDir {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let dir = std::env::temp_dir().join(format!(
                "rivulet-sigv4-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn write(&self, name: &str, text: &str) -> String {
            let path = self.0.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path.to_str().unwrap().to_string()
        }

        fn path(&self) -> String {
            self.0.to_str().unwrap().to_string()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const CREDENTIALS: &str = "\
# shared credentials
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key = SKDEFAULT

[work]
aws_access_key_id=AKWORK
aws_secret_access_key=SKWORK   ; trailing comment
aws_session_token = TOKWORK

[partial]
aws_access_key_id = AKPARTIAL
";

    const CONFIG: &str = "\u{FEFF}[default]
region = eu-west-1

[profile work]
region = us-west-2
endpoint_url = http://work.example:4567

[profile  partial]   # a comment after a section header
aws_secret_access_key = SKFROMCONFIG
aws_access_key_id = AKFROMCONFIG
region=ap-south-1
services = local

[profile configonly]
aws_access_key_id = AKCONFIG
aws_secret_access_key = SKCONFIG
s3 =
  endpoint_url = http://s3.example
  max_concurrent_requests = 20

[services local]
kinesis =
  endpoint_url = http://localhost:4567
cloudwatch =
  endpoint_url = http://localhost:4568

[profile ignoring]
endpoint_url = http://ignored.example
ignore_configured_endpoint_urls = true

[profile cn]
region = cn-north-1

[work]
region = not-a-config-profile-section
";

    /// A home directory with ~/.aws/credentials and ~/.aws/config.
    fn home() -> TempDir {
        let dir = TempDir::new();
        dir.write(".aws/credentials", CREDENTIALS);
        dir.write(".aws/config", CONFIG);
        dir
    }

    #[test]
    fn credentials_from_the_environment_first() {
        let dir = home();
        let env = env_of(&[
            ("HOME", dir.path().as_str()),
            ("AWS_ACCESS_KEY_ID", "AKENV"),
            ("AWS_SECRET_ACCESS_KEY", "SKENV"),
            ("AWS_SESSION_TOKEN", "TOKENV"),
            ("AWS_PROFILE", "work"),
        ]);
        let c = resolve_credentials(None, &env).unwrap();
        assert_eq!(
            (
                c.access_key.as_str(),
                c.secret_key.as_str(),
                c.session_token.as_deref()
            ),
            ("AKENV", "SKENV", Some("TOKENV"))
        );
        // An explicit profile skips the environment's keys, as the AWS CLI does.
        let c = resolve_credentials(Some("work"), &env).unwrap();
        assert_eq!(c.access_key, "AKWORK");
        // Half of a key pair in the environment is not a key pair.
        let env = env_of(&[
            ("HOME", dir.path().as_str()),
            ("AWS_ACCESS_KEY_ID", "AKENV"),
        ]);
        assert_eq!(
            resolve_credentials(None, &env).unwrap().access_key,
            "AKDEFAULT"
        );
        // Empty counts as unset.
        let env = env_of(&[
            ("HOME", dir.path().as_str()),
            ("AWS_ACCESS_KEY_ID", ""),
            ("AWS_SECRET_ACCESS_KEY", "SKENV"),
        ]);
        assert_eq!(
            resolve_credentials(None, &env).unwrap().access_key,
            "AKDEFAULT"
        );
    }

    #[test]
    fn credentials_from_profiles() {
        let dir = home();
        let home_only = env_of(&[("HOME", dir.path().as_str())]);
        let c = resolve_credentials(None, &home_only).unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.secret_key.as_str()),
            ("AKDEFAULT", "SKDEFAULT")
        );
        assert_eq!(c.session_token, None);
        let c = resolve_credentials(Some("work"), &home_only).unwrap();
        assert_eq!(
            (
                c.access_key.as_str(),
                c.secret_key.as_str(),
                c.session_token.as_deref()
            ),
            ("AKWORK", "SKWORK", Some("TOKWORK"))
        );
        // AWS_PROFILE names the profile when none is given.
        let env = env_of(&[("HOME", dir.path().as_str()), ("AWS_PROFILE", "work")]);
        assert_eq!(
            resolve_credentials(None, &env).unwrap().access_key,
            "AKWORK"
        );
        // Incomplete in the credentials file: the config file's profile is used.
        let c = resolve_credentials(Some("partial"), &home_only).unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.secret_key.as_str()),
            ("AKFROMCONFIG", "SKFROMCONFIG")
        );
        let c = resolve_credentials(Some("configonly"), &home_only).unwrap();
        assert_eq!(c.access_key, "AKCONFIG");
        // Nothing anywhere.
        assert!(resolve_credentials(Some("nosuch"), &home_only).is_none());
        assert!(resolve_credentials(None, &env_of(&[])).is_none());
        let empty = TempDir::new();
        assert!(resolve_credentials(None, &env_of(&[("HOME", &empty.path())])).is_none());
    }

    #[test]
    fn file_locations_from_the_environment() {
        let dir = TempDir::new();
        let creds_file = dir.write(
            "elsewhere/creds",
            "[default]\naws_access_key_id=A\naws_secret_access_key=S\n",
        );
        let config_file = dir.write("elsewhere/conf", "[profile p]\nregion = sa-east-1\n");
        let env = env_of(&[
            ("AWS_SHARED_CREDENTIALS_FILE", creds_file.as_str()),
            ("AWS_CONFIG_FILE", config_file.as_str()),
        ]);
        assert_eq!(resolve_credentials(None, &env).unwrap().access_key, "A");
        assert_eq!(
            resolve_region(None, Some("p"), &env).as_deref(),
            Some("sa-east-1")
        );
        // `~/` expands to the home directory.
        let env = env_of(&[
            ("HOME", dir.path().as_str()),
            ("AWS_SHARED_CREDENTIALS_FILE", "~/elsewhere/creds"),
            ("USERPROFILE", "/nonexistent"),
        ]);
        assert_eq!(resolve_credentials(None, &env).unwrap().secret_key, "S");
        // Windows-style home.
        let env = env_of(&[
            ("USERPROFILE", dir.path().as_str()),
            ("AWS_CONFIG_FILE", "~/elsewhere/conf"),
        ]);
        assert_eq!(
            resolve_region(None, Some("p"), &env).as_deref(),
            Some("sa-east-1")
        );
    }

    #[test]
    fn region_resolution() {
        let dir = home();
        let h = dir.path();
        let env = env_of(&[
            ("HOME", h.as_str()),
            ("AWS_REGION", "r1"),
            ("AWS_DEFAULT_REGION", "r2"),
        ]);
        assert_eq!(
            resolve_region(Some("explicit"), None, &env).as_deref(),
            Some("explicit")
        );
        assert_eq!(
            resolve_region(None, Some("work"), &env).as_deref(),
            Some("r1")
        );
        let env = env_of(&[("HOME", h.as_str()), ("AWS_DEFAULT_REGION", "r2")]);
        assert_eq!(resolve_region(None, None, &env).as_deref(), Some("r2"));
        let env = env_of(&[("HOME", h.as_str())]);
        assert_eq!(
            resolve_region(None, None, &env).as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(
            resolve_region(Some(""), Some("work"), &env).as_deref(),
            Some("us-west-2")
        );
        assert_eq!(
            resolve_region(None, Some("partial"), &env).as_deref(),
            Some("ap-south-1")
        );
        assert_eq!(resolve_region(None, Some("configonly"), &env), None);
        let env = env_of(&[("HOME", h.as_str()), ("AWS_PROFILE", "work")]);
        assert_eq!(
            resolve_region(None, None, &env).as_deref(),
            Some("us-west-2")
        );
        assert_eq!(resolve_region(None, None, &env_of(&[])), None);
    }

    #[test]
    fn endpoint_resolution() {
        let dir = home();
        let h = dir.path();
        let all = env_of(&[
            ("HOME", h.as_str()),
            ("AWS_ENDPOINT_URL_KINESIS", "http://k.env"),
            ("AWS_ENDPOINT_URL_CLOUDWATCH", "http://cw.env"),
            ("AWS_ENDPOINT_URL", "http://global.env"),
        ]);
        let r =
            |e: Option<&str>, s: &str, p: Option<&str>, env: &dyn Fn(&str) -> Option<String>| {
                resolve_endpoint(e, s, "us-east-2", p, env)
            };
        assert_eq!(
            r(Some("http://x:1"), "kinesis", Some("work"), &all),
            "http://x:1"
        );
        assert_eq!(r(None, "kinesis", Some("work"), &all), "http://k.env");
        assert_eq!(r(None, "monitoring", Some("work"), &all), "http://cw.env");
        let global = env_of(&[
            ("HOME", h.as_str()),
            ("AWS_ENDPOINT_URL", "http://global.env"),
        ]);
        assert_eq!(
            r(None, "monitoring", Some("work"), &global),
            "http://global.env"
        );
        let home_only = env_of(&[("HOME", h.as_str())]);
        assert_eq!(
            r(None, "kinesis", Some("work"), &home_only),
            "http://work.example:4567"
        );
        assert_eq!(
            r(None, "monitoring", Some("work"), &home_only),
            "http://work.example:4567"
        );
        // The profile's services section, per service.
        assert_eq!(
            r(None, "kinesis", Some("partial"), &home_only),
            "http://localhost:4567"
        );
        assert_eq!(
            r(None, "monitoring", Some("partial"), &home_only),
            "http://localhost:4568"
        );
        // Sub-properties do not leak into the profile.
        assert_eq!(
            r(None, "kinesis", Some("configonly"), &home_only),
            "https://kinesis.us-east-2.amazonaws.com"
        );
        assert_eq!(
            r(None, "monitoring", None, &home_only),
            "https://monitoring.us-east-2.amazonaws.com"
        );
        assert_eq!(
            resolve_endpoint(None, "kinesis", "cn-north-1", None, &home_only),
            "https://kinesis.cn-north-1.amazonaws.com.cn"
        );
        // Ignoring configured endpoints: by the environment, or by the profile.
        let ignoring = env_of(&[
            ("HOME", h.as_str()),
            ("AWS_ENDPOINT_URL_KINESIS", "http://k.env"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "TRUE"),
        ]);
        assert_eq!(
            r(None, "kinesis", Some("work"), &ignoring),
            "https://kinesis.us-east-2.amazonaws.com"
        );
        assert_eq!(
            r(Some("http://x:1"), "kinesis", None, &ignoring),
            "http://x:1"
        );
        assert_eq!(
            r(None, "kinesis", Some("ignoring"), &home_only),
            "https://kinesis.us-east-2.amazonaws.com"
        );
        // AWS_PROFILE picks the profile here too.
        let env = env_of(&[("HOME", h.as_str()), ("AWS_PROFILE", "work")]);
        assert_eq!(r(None, "kinesis", None, &env), "http://work.example:4567");
    }

    #[test]
    fn profile_file_parsing() {
        let f = parse_profile_file(CONFIG);
        assert_eq!(f["default"]["region"], "eu-west-1");
        assert_eq!(f["profile partial"]["services"], "local");
        assert_eq!(f["profile configonly"]["s3"], "");
        assert_eq!(f["profile configonly"]["s3.max_concurrent_requests"], "20");
        assert_eq!(
            f["services local"]["kinesis.endpoint_url"],
            "http://localhost:4567"
        );
        assert!(!f["profile configonly"].contains_key("endpoint_url"));
        assert_eq!(f["work"]["region"], "not-a-config-profile-section");
        assert!(config_profile(&f, "work").is_some_and(|s| s["region"] == "us-west-2"));
        let f = parse_profile_file(
            "key = outside any section\n\
             [a]\n\
             Key1 = v1 # comment\n\
             key2 = v#not-a-comment\n\
             key3: colon\n\
             key4 = first\n  second line\n\
             ; comment line\n\
             [broken\n\
             lost = yes\n\
             [b] junk\n\
             lost2 = yes\n\
             [a]\n\
             key2 = overridden\n\
             [profile default]\n\
             region = from-profile-default\n\
             [default]\n\
             region = from-default\n",
        );
        assert_eq!(f["a"]["key1"], "v1");
        assert_eq!(f["a"]["key2"], "overridden");
        assert_eq!(f["a"]["key3"], "colon");
        assert_eq!(f["a"]["key4"], "first\nsecond line");
        assert!(
            !f.values()
                .any(|s| s.contains_key("lost") || s.contains_key("lost2"))
        );
        assert!(
            !f.values()
                .any(|s| s.contains_key("key") && s["key"].contains("outside"))
        );
        // For the default profile, [profile default] comes before [default].
        assert_eq!(
            config_profile(&f, "default").unwrap()["region"],
            "from-profile-default"
        );
        assert_eq!(strip_comment("  a ; b"), "a");
        assert_eq!(strip_comment("#a"), "#a");
    }
}
