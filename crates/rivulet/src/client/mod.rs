//! The client side of the API, for the `rivulet` CLI and the canary: endpoint, region and
//! credential resolution as the AWS CLI does it (`sigv4`), SigV4-signed JSON requests over
//! pooled HTTP/1.1 connections, retries with backoff and jitter for throttling and
//! transient failures, and the KPL aggregation format (`kpl`).

pub mod kpl;
pub mod sigv4;

use std::time::Duration;

use axum::body::Body;
use hyper_util::client::legacy::Client as Pool;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::clock::{Clock, SystemClock};
use sigv4::Credentials;

/// Where and how to reach the API: `--endpoint-url`, `--region`, `--profile`.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct Connection {
    /// Endpoint of the Kinesis and CloudWatch APIs (else AWS_ENDPOINT_URL_KINESIS,
    /// AWS_ENDPOINT_URL, the profile's endpoint_url, or AWS).
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
    /// Region (else AWS_REGION, AWS_DEFAULT_REGION, the profile's region, us-east-1).
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Profile in ~/.aws/credentials and ~/.aws/config (else AWS_PROFILE, default).
    #[arg(long, global = true)]
    pub profile: Option<String>,
}

/// An API error as the server sent it, or a transport failure.
#[derive(Debug, Clone)]
pub struct CallError {
    /// The error type (`ResourceNotFoundException`, …) or `ConnectionError`.
    pub kind: String,
    pub message: String,
    pub status: u16,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for CallError {}

impl CallError {
    /// Throttling and server-side failures are worth another try; client errors are not.
    pub fn retryable(&self) -> bool {
        self.status >= 500
            || self.status == 0
            || matches!(
                self.kind.as_str(),
                "ProvisionedThroughputExceededException"
                    | "LimitExceededException"
                    | "ThrottlingException"
                    | "KMSThrottlingException"
                    | "InternalFailure"
                    | "ServiceUnavailable"
            )
    }
}

/// Retries: attempts and the backoff before the second one (doubling, with full jitter).
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    pub base: Duration,
    pub max: Duration,
}

impl Default for Retry {
    fn default() -> Retry {
        Retry {
            attempts: 8,
            base: Duration::from_millis(50),
            max: Duration::from_secs(5),
        }
    }
}

impl Retry {
    /// The wait before attempt `n` (1-based, n ≥ 2): uniform in [0, min(max, base·2^(n-2))].
    pub fn backoff(&self, n: u32) -> Duration {
        let cap = self
            .base
            .saturating_mul(1 << (n.saturating_sub(2)).min(20))
            .min(self.max);
        cap.mul_f64(jitter())
    }
}

/// A uniform number in [0, 1) from a thread-local xorshift, seeded from the clock.
pub fn jitter() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new(
            (SystemClock.now_ms() as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        );
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

#[derive(Clone)]
pub struct Client {
    pool: Pool<Connector, Body>,
    kinesis_url: String,
    cloudwatch_url: String,
    region: String,
    credentials: Credentials,
    pub retry: Retry,
    pub timeout: Duration,
}

#[cfg(feature = "tls")]
type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
#[cfg(not(feature = "tls"))]
type Connector = HttpConnector;

#[cfg(not(feature = "tls"))]
fn connector() -> anyhow::Result<Connector> {
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    Ok(http)
}

/// http:// and https://: TLS 1.2 and 1.3 with the system's root certificates, plus those in
/// the PEM file AWS_CA_BUNDLE names (as the AWS CLI honours it).
#[cfg(feature = "tls")]
fn connector() -> anyhow::Result<Connector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    if let Some(bundle) = env("AWS_CA_BUNDLE") {
        let certs = CertificateDer::pem_file_iter(&bundle)
            .map_err(|e| anyhow::anyhow!("AWS_CA_BUNDLE {bundle}: {e}"))?;
        for cert in certs {
            let cert = cert.map_err(|e| anyhow::anyhow!("AWS_CA_BUNDLE {bundle}: {e}"))?;
            roots.add(cert)?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    http.set_nodelay(true);
    http.enforce_http(false);
    Ok(hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_http1()
        .wrap_connector(http))
}

/// An error and its sources, for messages that say what actually failed.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

impl Client {
    /// Resolves endpoint, region and credentials as the AWS CLI does. Without credentials
    /// anywhere, requests are signed with placeholder ones (Rivulet accepts any).
    pub fn new(c: &Connection) -> anyhow::Result<Client> {
        let profile = c.profile.as_deref();
        let region = sigv4::resolve_region(c.region.as_deref(), profile, &env)
            .unwrap_or_else(|| "us-east-1".into());
        let kinesis_url =
            sigv4::resolve_endpoint(c.endpoint_url.as_deref(), "kinesis", &region, profile, &env);
        let cloudwatch_url = sigv4::resolve_endpoint(
            c.endpoint_url.as_deref(),
            "monitoring",
            &region,
            profile,
            &env,
        );
        for url in [&kinesis_url, &cloudwatch_url] {
            let https = url.starts_with("https://");
            anyhow::ensure!(
                url.starts_with("http://") || https,
                "{url}: the endpoint must be an http:// or https:// URL"
            );
            anyhow::ensure!(
                !https || cfg!(feature = "tls"),
                "{url}: https:// endpoints need a rivulet built with `--features tls`"
            );
        }
        let credentials = sigv4::resolve_credentials(profile, &env).unwrap_or(Credentials {
            access_key: "rivulet".into(),
            secret_key: "rivulet".into(),
            session_token: None,
        });
        let pool = Pool::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector()?);
        Ok(Client {
            pool,
            kinesis_url: kinesis_url.trim_end_matches('/').into(),
            cloudwatch_url: cloudwatch_url.trim_end_matches('/').into(),
            region,
            credentials,
            retry: Retry::default(),
            timeout: Duration::from_secs(30),
        })
    }

    pub fn endpoint(&self) -> &str {
        &self.kinesis_url
    }

    /// One Kinesis call, retried per `self.retry` when the error is retryable.
    pub async fn kinesis(&self, op: &str, body: Value) -> Result<Value, CallError> {
        self.with_retries(|| self.once(Service::Kinesis, op, &body))
            .await
    }

    /// One Kinesis call, no retries.
    pub async fn kinesis_once(&self, op: &str, body: &Value) -> Result<Value, CallError> {
        self.once(Service::Kinesis, op, body).await
    }

    pub async fn cloudwatch(&self, op: &str, body: Value) -> Result<Value, CallError> {
        self.with_retries(|| self.once(Service::CloudWatch, op, &body))
            .await
    }

    async fn with_retries<'a, F, Fut>(&'a self, call: F) -> Result<Value, CallError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<Value, CallError>> + 'a,
    {
        let mut attempt = 1;
        loop {
            match call().await {
                Err(e) if e.retryable() && attempt < self.retry.attempts => {
                    attempt += 1;
                    tokio::time::sleep(self.retry.backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }

    async fn once(&self, service: Service, op: &str, body: &Value) -> Result<Value, CallError> {
        let (url, target, content_type, signing_name) = match service {
            Service::Kinesis => (
                &self.kinesis_url,
                format!("Kinesis_20131202.{op}"),
                "application/x-amz-json-1.1",
                "kinesis",
            ),
            Service::CloudWatch => (
                &self.cloudwatch_url,
                format!("GraniteServiceVersion20100801.{op}"),
                "application/x-amz-json-1.0",
                "monitoring",
            ),
        };
        let uri: hyper::Uri = url.parse().map_err(|e| CallError {
            kind: "InvalidEndpoint".into(),
            message: format!("{url}: {e}"),
            status: 0,
        })?;
        let host = uri
            .authority()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default();
        let path = match uri.path() {
            "" => "/",
            p => p,
        };
        let payload = serde_json::to_vec(body).expect("serializes");
        let headers = vec![
            ("content-type".to_string(), content_type.to_string()),
            ("host".to_string(), host.clone()),
            ("x-amz-target".to_string(), target.clone()),
        ];
        let date = sigv4::amz_date(SystemClock.now_ms());
        let signed = sigv4::sign(
            &self.credentials,
            &self.region,
            signing_name,
            "POST",
            path,
            "",
            &headers,
            &payload,
            &date,
        );
        let mut request = hyper::Request::post(uri.clone());
        for (k, v) in headers.iter().chain(&signed) {
            request = request.header(k.as_str(), v.as_str());
        }
        let request = request.body(Body::from(payload)).map_err(|e| CallError {
            kind: "InvalidRequest".into(),
            message: e.to_string(),
            status: 0,
        })?;
        let connection = |m: String| CallError {
            kind: "ConnectionError".into(),
            message: m,
            status: 0,
        };
        let response = tokio::time::timeout(self.timeout, self.pool.request(request))
            .await
            .map_err(|_| connection(format!("no response from {url} within {:?}", self.timeout)))?
            .map_err(|e| connection(format!("{url}: {}", chain(&e))))?;
        let status = response.status().as_u16();
        let query_error = response
            .headers()
            .get("x-amzn-query-error")
            .and_then(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or(v).to_owned());
        let bytes = axum::body::to_bytes(
            Body::new(response.into_body()),
            crate::httpc::RESPONSE_BYTES_MAX,
        )
        .await
        .map_err(|e| connection(format!("reading the response: {e}")))?;
        let value: Value = if bytes.is_empty() {
            Value::Object(Default::default())
        } else {
            serde_json::from_slice(&bytes).map_err(|e| CallError {
                kind: "SerializationError".into(),
                message: format!("HTTP {status}, body is not JSON: {e}"),
                status,
            })?
        };
        if status == 200 {
            return Ok(value);
        }
        let kind = query_error.unwrap_or_else(|| {
            let t = value["__type"].as_str().unwrap_or("UnknownError");
            t.rsplit('#').next().unwrap_or(t).to_owned()
        });
        let message = value["message"]
            .as_str()
            .or(value["Message"].as_str())
            .unwrap_or("")
            .to_owned();
        Err(CallError {
            kind,
            message,
            status,
        })
    }
}

#[derive(Clone, Copy)]
enum Service {
    Kinesis,
    CloudWatch,
}
