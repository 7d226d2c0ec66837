//! The consumer's server-to-server HTTP client: whole replies with their `X-Served-By` and `oauth_problem`,
//! and one method per step of the flow (discovery, registration, the two signed token exchanges, signed reads).

use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::super::signature::{
    self, ClientCredentials, OAuthRequest, ParamLocation, SignedRequest,
};
use super::super::wire::{
    self, param, ConsumerRegistration, Discovery, RegisteredKey, FORM, REALM, SERVED_BY,
};
use super::super::{random_hex, unix_now, SimError};
use super::report::Failure;
use super::resolve::{Resolve, ResolvingConnector};
use crate::oauth::percent;
use crate::secret::Secret;

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    /// Status.
    pub status: StatusCode,
    /// Headers.
    pub headers: HeaderMap,
    /// Body.
    pub body: Bytes,
}

impl Reply {
    /// `X-Served-By`.
    pub fn served_by(&self) -> Option<String> {
        header_string(&self.headers, SERVED_BY)
    }

    /// `oauth_problem` from `WWW-Authenticate: OAuth ...`, else from an `oauth_problem=` body line.
    pub fn oauth_problem(&self) -> Option<String> {
        let from_header = self
            .headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| signature::parse_authorization(v).ok().flatten())
            .find_map(|h| {
                h.params
                    .into_iter()
                    .find(|(n, _)| n == param::OAUTH_PROBLEM)
                    .map(|(_, v)| v)
            });
        from_header.or_else(|| {
            self.text()
                .lines()
                .find_map(|l| {
                    l.trim()
                        .strip_prefix(param::OAUTH_PROBLEM)?
                        .strip_prefix('=')
                })
                .and_then(|v| percent::decode(v).ok())
        })
    }

    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// What a failure report shows of this reply: its body's first line (60 characters at most), or the
    /// status's reason when the body is empty.
    pub fn detail(&self) -> String {
        let detail: String = self
            .text()
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .chars()
            .take(60)
            .collect();
        if detail.is_empty() {
            self.status
                .canonical_reason()
                .unwrap_or("unexpected status")
                .to_string()
        } else {
            detail
        }
    }

    /// This reply as a step failure.
    pub fn failure(&self) -> Failure {
        Failure {
            status: Some(self.status.as_u16()),
            oauth_problem: self.oauth_problem(),
            invalid_expired_token: self.text().contains("invalid_expired_token"),
            served_by: self.served_by(),
            detail: self.detail(),
        }
    }

    pub(super) fn expect(self, status: StatusCode) -> Result<Reply, Failure> {
        if self.status == status {
            Ok(self)
        } else {
            Err(self.failure())
        }
    }
}

pub(super) fn header_string(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A value from a step and the node that served it.
#[derive(Debug, Clone)]
pub struct Served<T> {
    /// The value.
    pub value: T,
    /// `X-Served-By`.
    pub served_by: Option<String>,
}

/// A token and its secret, as a node hands them out.
#[derive(Debug, Clone)]
pub struct TokenPair {
    /// `oauth_token`.
    pub token: String,
    /// `oauth_token_secret`.
    pub secret: Secret,
}

/// An HTTP/1.1 client with its own keep-alive pool (`http` and `https`). Clones share the pool.
#[derive(Debug, Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<ResolvingConnector>, Full<Bytes>>,
    timeout: Duration,
}

impl HttpClient {
    /// A client with a fresh pool.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Self {
        HttpClient::with_resolve(tls, timeout, &[])
    }

    /// A client with a fresh pool that dials the `--resolve` address of the hosts and ports in `resolve`.
    pub fn with_resolve(tls: rustls::ClientConfig, timeout: Duration, resolve: &[Resolve]) -> Self {
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(ResolvingConnector::new(resolve));
        HttpClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            timeout,
        }
    }

    /// Sends a request and reads the whole response.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(http::HeaderName, String)],
        body: Option<(&str, String)>,
    ) -> Result<Reply, SimError> {
        let mut builder = Request::builder().method(method).uri(url);
        for (name, value) in headers {
            builder = builder.header(name, value);
        }
        let body = match body {
            Some((content_type, body)) => {
                builder = builder.header(CONTENT_TYPE, content_type);
                Full::new(Bytes::from(body))
            }
            None => Full::new(Bytes::new()),
        };
        let request = builder.body(body)?;
        let exchange = async {
            let response =
                self.client
                    .request(request)
                    .await
                    .map_err(|source| SimError::Request {
                        url: without_query(url),
                        source,
                    })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|source| SimError::Body {
                    url: without_query(url),
                    source,
                })?
                .to_bytes();
            Ok(Reply {
                status: parts.status,
                headers: parts.headers,
                body,
            })
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| SimError::Timeout {
                url: without_query(url),
            })?
    }

    /// Sends a signed request as signed (URL, `Authorization`, form body).
    pub async fn send_signed(&self, signed: &SignedRequest) -> Result<Reply, SimError> {
        let method = Method::from_bytes(signed.method.as_bytes())
            .map_err(|e| SimError::BuildRequest(e.into()))?;
        let headers: Vec<(http::HeaderName, String)> = signed
            .authorization
            .iter()
            .map(|a| (AUTHORIZATION, a.clone()))
            .collect();
        let body = signed.body.clone().map(|b| (FORM, b));
        self.send(method, &signed.url, &headers, body).await
    }

    /// `GET {target}/cqweb/oslc/repo/{db}/discovery`.
    pub async fn discover(&self, target: &str, db: &str) -> Result<Served<Discovery>, Failure> {
        let url = format!(
            "{}{}",
            target.trim_end_matches('/'),
            wire::discovery_path(db)
        );
        let reply = self
            .send(Method::GET, &url, &[], None)
            .await?
            .expect(StatusCode::OK)?;
        let value = serde_json::from_slice(&reply.body)
            .map_err(|e| Failure::local(format!("bad discovery document: {e}")))?;
        Ok(Served {
            value,
            served_by: reply.served_by(),
        })
    }

    /// `POST` JSON `{"name", "secret"}` to the registration URL; returns the provisional key.
    pub async fn register_consumer(
        &self,
        url: &str,
        name: &str,
        secret: &Secret,
    ) -> Result<Served<String>, Failure> {
        let registration = ConsumerRegistration {
            name: name.to_string(),
            secret: secret.expose().to_string(),
        };
        let body = serde_json::to_string(&registration)
            .map_err(|e| Failure::local(format!("cannot encode the registration: {e}")))?;
        let reply = self
            .send(Method::POST, url, &[], Some(("application/json", body)))
            .await?
            .expect(StatusCode::OK)?;
        let RegisteredKey { key } = serde_json::from_slice(&reply.body)
            .map_err(|_| Failure::local("registration answer has no key"))?;
        Ok(Served {
            value: key,
            served_by: reply.served_by(),
        })
    }

    /// Signed `POST` to the request-token URL with `oauth_callback`.
    pub async fn request_token(
        &self,
        url: &str,
        creds: &ClientCredentials,
        callback: &str,
        location: ParamLocation,
    ) -> Result<Served<TokenPair>, Failure> {
        let req = OAuthRequest::new("POST", url).oauth_param(param::OAUTH_CALLBACK, callback);
        self.token_exchange(req, creds, location).await
    }

    /// Signed `POST` to the access-token URL with the request token and `oauth_verifier`.
    pub async fn access_token(
        &self,
        url: &str,
        creds: &ClientCredentials,
        verifier: &str,
        location: ParamLocation,
    ) -> Result<Served<TokenPair>, Failure> {
        let req = OAuthRequest::new("POST", url).oauth_param(param::OAUTH_VERIFIER, verifier);
        self.token_exchange(req, creds, location).await
    }

    async fn token_exchange(
        &self,
        req: OAuthRequest,
        creds: &ClientCredentials,
        location: ParamLocation,
    ) -> Result<Served<TokenPair>, Failure> {
        let signed = sign_now(&req, creds, location)?;
        let reply = self.send_signed(&signed).await?.expect(StatusCode::OK)?;
        let pairs = percent::parse_form(&reply.body)
            .map_err(|e| Failure::local(format!("bad token answer: {e}")))?;
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        let (Some(token), Some(secret)) = (get(param::OAUTH_TOKEN), get(param::OAUTH_TOKEN_SECRET))
        else {
            return Err(Failure::local(
                "token answer lacks oauth_token or oauth_token_secret",
            ));
        };
        Ok(Served {
            value: TokenPair {
                token,
                secret: Secret::new(secret),
            },
            served_by: reply.served_by(),
        })
    }

    /// A signed read of a protected resource (`GET`, or `POST` when the parameters travel in the body).
    pub async fn read_resource(
        &self,
        url: &str,
        creds: &ClientCredentials,
        location: ParamLocation,
    ) -> Result<Served<serde_json::Value>, Failure> {
        let method = if location == ParamLocation::Body {
            "POST"
        } else {
            "GET"
        };
        let signed = sign_now(&OAuthRequest::new(method, url), creds, location)?;
        let reply = self.send_signed(&signed).await?.expect(StatusCode::OK)?;
        let value = serde_json::from_slice(&reply.body)
            .map_err(|e| Failure::local(format!("bad resource document: {e}")))?;
        Ok(Served {
            value,
            served_by: reply.served_by(),
        })
    }
}

/// `url` without its query, for errors: a query can carry a credential (`?oauth_token=`, `?key=`, or every
/// protocol parameter when they travel there), and credentials never appear in errors.
fn without_query(url: &str) -> String {
    url.split_once('?')
        .map_or(url, |(path, _)| path)
        .to_string()
}

/// Signs with a fresh nonce and the current time.
pub fn sign_now(
    req: &OAuthRequest,
    creds: &ClientCredentials,
    location: ParamLocation,
) -> Result<SignedRequest, SimError> {
    Ok(req
        .clone()
        .realm(REALM)
        .sign(creds, location, &random_hex(12), unix_now())?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[tokio::test]
    async fn a_failed_request_names_its_url_without_the_query_that_carries_credentials() {
        // A port that was just free: the connect is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = HttpClient::new(
            super::super::tls_client_config(None).unwrap(),
            Duration::from_secs(5),
        );
        let url = format!("http://127.0.0.1:{port}/cqweb/oauth-authorize?oauth_token=t0ps3cret");
        let err = client.send(Method::GET, &url, &[], None).await.unwrap_err();
        let text = Failure::from(err).reason();
        assert!(text.contains("/cqweb/oauth-authorize failed"), "{text}");
        assert!(!text.contains("t0ps3cret"), "{text}");
    }

    #[test]
    fn reply_reads_the_problem_from_www_authenticate() {
        let mut headers = HeaderMap::new();
        headers.insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("OAuth realm=\"cqweb\", oauth_problem=\"nonce_used\""),
        );
        let reply = Reply {
            status: StatusCode::UNAUTHORIZED,
            headers,
            body: Bytes::from_static(b"401: nonce_used\n"),
        };
        assert_eq!(reply.failure().reason(), "401 nonce_used");
    }
}
