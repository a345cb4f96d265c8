//! A small HTTP client for the node API, used by the CLI, the demo, the
//! benchmark and the tests.

use std::time::Duration;

use rxchain_contracts::{Genesis, SignedTx};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::mempool::Receipt;
use crate::service::submit::{BatchItem, BatchResponse};

/// The content type of postcard batches (`POST /v1/tx/batch`).
const POSTCARD: &str = "application/x-postcard";

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The node could not be reached.
    #[error("cannot reach the node: {0}")]
    Transport(#[from] reqwest::Error),
    /// The node answered with an error.
    #[error("{status} {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Machine-readable code.
        code: String,
        /// Sentence for people.
        message: String,
        /// The whole body.
        body: Value,
    },
}

/// What a submission came back with.
#[derive(Debug)]
pub enum Submitted {
    /// Committed and applied.
    Applied(Receipt),
    /// Admitted, not yet committed: poll this URL.
    Pending(String),
}

/// A client bound to one node.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
}

/// Why a client could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// The genesis or CA file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The genesis file does not parse.
    #[error("{path} is not a genesis document: {source}")]
    Genesis {
        /// The file.
        path: std::path::PathBuf,
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    /// reqwest refused the configuration.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder().timeout(Duration::from_secs(60))
}

impl Client {
    /// A client for `base`, e.g. `http://127.0.0.1:8080`. It cannot reach an
    /// `https://` node: see [`Client::with_tls`] and [`Client::trusting`].
    pub fn new(base: impl Into<String>) -> Self {
        crate::tls::install_default_provider();
        let http = builder().build().unwrap_or_default();
        Client {
            base: base.into().trim_end_matches('/').to_string(),
            http,
        }
    }

    /// A client for `base` that speaks TLS with `config` (for example
    /// [`crate::tls::genesis_client_config`]: any node the genesis declares).
    pub fn with_tls(
        base: impl Into<String>,
        config: rustls::ClientConfig,
    ) -> Result<Self, TrustError> {
        Ok(Client {
            base: base.into().trim_end_matches('/').to_string(),
            http: builder().use_preconfigured_tls(config).build()?,
        })
    }

    /// A client for `base` as the CLI makes it: plain for `http://`; for
    /// `https://`, trusting a CA from `ca` if given, else any node TLS key the
    /// genesis at `genesis` declares.
    pub fn trusting(
        base: impl Into<String>,
        genesis: &std::path::Path,
        ca: Option<&std::path::Path>,
    ) -> Result<Self, TrustError> {
        let base = base.into();
        if !base.starts_with("https://") {
            return Ok(Client::new(base));
        }
        let read = |p: &std::path::Path| {
            std::fs::read_to_string(p).map_err(|source| TrustError::Read {
                path: p.into(),
                source,
            })
        };
        let config = match ca {
            Some(ca) => crate::tls::ca_client_config(&read(ca)?)?,
            None => {
                let g: Genesis = serde_json::from_str(&read(genesis)?).map_err(|source| {
                    TrustError::Genesis {
                        path: genesis.into(),
                        source,
                    }
                })?;
                crate::tls::genesis_client_config(&g)?
            }
        };
        Client::with_tls(base, config)
    }

    /// The base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<(u16, T), ClientError> {
        let status = resp.status().as_u16();
        let body: Value = resp.json().await?;
        if status >= 400 {
            return Err(ClientError::Api {
                status,
                code: body["code"].as_str().unwrap_or("").to_string(),
                message: body["message"].as_str().unwrap_or("").to_string(),
                body,
            });
        }
        let v = serde_json::from_value(body.clone()).map_err(|e| ClientError::Api {
            status,
            code: "unexpected_body".into(),
            message: e.to_string(),
            body,
        })?;
        Ok((status, v))
    }

    /// GET a JSON resource.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let resp = self
            .http
            .get(format!("{}{}", self.base, path))
            .send()
            .await?;
        Ok(Self::decode(resp).await?.1)
    }

    /// POST JSON and decode the answer.
    pub async fn post<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let resp = self
            .http
            .post(format!("{}{}", self.base, path))
            .json(body)
            .send()
            .await?;
        Ok(Self::decode(resp).await?.1)
    }

    /// Sends a request with extra headers and a raw JSON body, and returns
    /// the status and JSON answer whatever the status (the caller decides
    /// what a refusal means).
    pub async fn request_raw(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: String,
    ) -> Result<(u16, Value), ClientError> {
        let mut req = self
            .http
            .request(method, format!("{}{}", self.base, path))
            .header("content-type", "application/json")
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        Ok((status, resp.json().await?))
    }

    /// [`Client::request_raw`] that also answers the response headers (a
    /// session's `Set-Cookie`, for the staff CLI).
    pub async fn request_with_headers(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&'static str, String)],
        body: Option<String>,
    ) -> Result<(u16, reqwest::header::HeaderMap, Value), ClientError> {
        let mut req = self.http.request(method, format!("{}{}", self.base, path));
        if let Some(body) = body {
            req = req.header("content-type", "application/json").body(body);
        }
        for (k, v) in headers {
            req = req.header(*k, v.as_str());
        }
        let resp = req.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await?;
        let v = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Ok((status, headers, v))
    }

    /// Submits a signed transaction and waits for its commit.
    pub async fn submit(&self, tx: &SignedTx) -> Result<Submitted, ClientError> {
        let resp = self
            .http
            .post(format!("{}/v1/tx", self.base))
            .json(tx)
            .send()
            .await?;
        let (status, v): (u16, Value) = Self::decode(resp).await?;
        if status == 202 {
            return Ok(Submitted::Pending(
                v["poll"].as_str().unwrap_or_default().to_string(),
            ));
        }
        serde_json::from_value(v.clone())
            .map(Submitted::Applied)
            .map_err(|e| ClientError::Api {
                status,
                code: "unexpected_body".into(),
                message: e.to_string(),
                body: v,
            })
    }

    /// Submits many signed transactions in one request (`POST
    /// /v1/tx/batch`, postcard both ways) and returns one answer per
    /// transaction, in order. A batch that is refused as a whole (malformed,
    /// too large) is an error.
    pub async fn submit_batch(&self, txs: &[SignedTx]) -> Result<Vec<BatchItem>, ClientError> {
        let raw: Vec<Vec<u8>> = txs.iter().map(|t| t.to_bytes()).collect();
        let body = rxchain_contracts::encoding::to_bytes(&raw);
        let resp = self
            .http
            .post(format!("{}/v1/tx/batch", self.base))
            .header(reqwest::header::CONTENT_TYPE, POSTCARD)
            .body(body)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let postcard = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with(POSTCARD));
        if status == 200 && postcard {
            let bytes = resp.bytes().await?;
            return rxchain_contracts::encoding::from_bytes::<BatchResponse>(&bytes)
                .map(|r| r.results)
                .map_err(|e| ClientError::Api {
                    status,
                    code: "unexpected_body".into(),
                    message: e.to_string(),
                    body: Value::Null,
                });
        }
        let (status, v): (u16, Value) = Self::decode(resp).await?;
        Err(ClientError::Api {
            status,
            code: "unexpected_body".into(),
            message: format!("the batch was answered {status} without a postcard body"),
            body: v,
        })
    }

    /// The effective consortium (genesis plus governance decisions),
    /// rebuilt as a genesis value sufficient for building transactions
    /// (chain id, org keys, parameters).
    pub async fn genesis(&self) -> Result<Genesis, ClientError> {
        let c: Value = self.get("/v1/consortium").await?;
        let g = serde_json::json!({
            "chain_id": c["chain_id"],
            "created_at": 0,
            "orgs": c["orgs"],
            "params": c["params"],
        });
        serde_json::from_value(g).map_err(|e| ClientError::Api {
            status: 200,
            code: "unexpected_body".into(),
            message: e.to_string(),
            body: c,
        })
    }
}
