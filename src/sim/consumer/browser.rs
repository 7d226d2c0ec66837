//! A browser for the flow's user-facing pages: its own connection pool and cookie jar, form posts, the
//! approval prompt and the authorize page.

use std::collections::BTreeMap;
use std::time::Duration;

use http::header::{COOKIE, LOCATION, SET_COOKIE};
use http::{Method, StatusCode};

use super::super::signature::form_encode;
use super::super::wire::{param, FORM};
use super::super::SimError;
use super::client::{header_string, HttpClient, Reply, Served};
use super::report::Failure;
use crate::oauth::percent::encode;
use crate::secret::Secret;

/// A browser: its own connection pool and its own cookie jar (cookies are kept by name, for every host:
/// the consumer talks to one provider).
#[derive(Debug)]
pub struct Browser {
    http: HttpClient,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    /// A browser with no cookies.
    pub fn new(tls: rustls::ClientConfig, timeout: Duration) -> Self {
        Browser::with_client(HttpClient::new(tls, timeout))
    }

    /// A browser with no cookies, sending through `http` (which should not be shared with another browser).
    pub fn with_client(http: HttpClient) -> Self {
        Browser {
            http,
            cookies: BTreeMap::new(),
        }
    }

    /// A cookie's value.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies.get(name).map(String::as_str)
    }

    async fn send(
        &mut self,
        method: Method,
        url: &str,
        body: Option<(&str, String)>,
    ) -> Result<Reply, SimError> {
        let mut headers = Vec::new();
        if !self.cookies.is_empty() {
            let jar = self
                .cookies
                .iter()
                .map(|(n, v)| format!("{n}={v}"))
                .collect::<Vec<_>>()
                .join("; ");
            headers.push((COOKIE, jar));
        }
        let reply = self.http.send(method, url, &headers, body).await?;
        for value in reply.headers.get_all(SET_COOKIE) {
            let Ok(value) = value.to_str() else { continue };
            let pair = value.split(';').next().unwrap_or("");
            if let Some((n, v)) = pair.trim().split_once('=') {
                self.cookies.insert(n.to_string(), v.to_string());
            }
        }
        Ok(reply)
    }

    /// `GET url`.
    pub async fn get(&mut self, url: &str) -> Result<Reply, SimError> {
        self.send(Method::GET, url, None).await
    }

    /// `POST url` with a form body.
    pub async fn post_form(
        &mut self,
        url: &str,
        form: &[(String, String)],
    ) -> Result<Reply, SimError> {
        self.send(Method::POST, url, Some((FORM, form_encode(form))))
            .await
    }

    /// Form login; keeps the session cookie.
    pub async fn login(
        &mut self,
        url: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Served<()>, Failure> {
        let form = [
            (param::USERNAME.to_string(), user.to_string()),
            (param::PASSWORD.to_string(), password.expose().to_string()),
        ];
        let reply = self.post_form(url, &form).await?.expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `POST` on the approval URL for `key` with administrator credentials typed into the prompt.
    pub async fn approve_with_credentials(
        &mut self,
        url: &str,
        key: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Served<()>, Failure> {
        let url = with_query(url, &[(param::KEY, key)]);
        let form = [
            (param::USERNAME.to_string(), user.to_string()),
            (param::PASSWORD.to_string(), password.expose().to_string()),
            (param::APPROVE.to_string(), "yes".to_string()),
        ];
        let reply = self.post_form(&url, &form).await?.expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `GET` (form) or `POST` (approve) on the approval URL for `key`.
    pub async fn approve(
        &mut self,
        url: &str,
        key: &str,
        submit: bool,
    ) -> Result<Served<()>, Failure> {
        let url = with_query(url, &[(param::KEY, key)]);
        let reply = if submit {
            self.post_form(&url, &[(param::APPROVE.into(), "yes".into())])
                .await?
        } else {
            self.get(&url).await?
        };
        let reply = reply.expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `GET` the authorize page for a request token.
    pub async fn authorize_form(&mut self, url: &str, token: &str) -> Result<Served<()>, Failure> {
        let reply = self
            .get(&with_query(url, &[(param::OAUTH_TOKEN, token)]))
            .await?
            .expect(StatusCode::OK)?;
        Ok(Served {
            value: (),
            served_by: reply.served_by(),
        })
    }

    /// `POST` the authorize page with the user's credentials; returns the redirect `Location`.
    pub async fn authorize(
        &mut self,
        url: &str,
        token: &str,
        user: &str,
        password: &Secret,
    ) -> Result<Served<String>, Failure> {
        let form = [
            (param::OAUTH_TOKEN.to_string(), token.to_string()),
            (param::USERNAME.to_string(), user.to_string()),
            (param::PASSWORD.to_string(), password.expose().to_string()),
        ];
        let reply = self
            .post_form(url, &form)
            .await?
            .expect(StatusCode::FOUND)?;
        let location = header_string(&reply.headers, LOCATION.as_str())
            .ok_or_else(|| Failure::local("302 without Location"))?;
        Ok(Served {
            value: location,
            served_by: reply.served_by(),
        })
    }
}

fn with_query(url: &str, pairs: &[(&str, &str)]) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    let query = pairs
        .iter()
        .map(|(n, v)| format!("{}={}", encode(n), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    format!("{url}{sep}{query}")
}
