//! One friendship flow played step by step, keeping every credential so tests can check where it went and
//! that it never leaked.

use std::time::Duration;

use tokenroute::secret::Secret;
use tokenroute::sim::consumer::{tls_client_config, Browser, HttpClient};
use tokenroute::sim::repository::{ADMIN_PASSWORD, ADMIN_USER, USER, USER_PASSWORD};
use tokenroute::sim::signature::{ClientCredentials, ParamLocation};
use tokenroute::sim::wire::Discovery;

pub const DB: &str = "cqschema";
/// Never followed: the tests read the verifier from the redirect's `Location`.
const CALLBACK: &str = "http://127.0.0.1:9/callback";
const TIMEOUT: Duration = Duration::from_secs(10);

pub fn client() -> HttpClient {
    HttpClient::new(tls_client_config(None).unwrap(), TIMEOUT)
}

pub fn browser() -> Browser {
    Browser::new(tls_client_config(None).unwrap(), TIMEOUT)
}

/// Every credential a flow handled, in clear (the test is the consumer, so it may know them).
#[derive(Debug, Default, Clone)]
pub struct Credentials {
    pub consumer_key: String,
    pub consumer_secret: String,
    pub request_token: String,
    pub request_token_secret: String,
    pub verifier: String,
    pub access_token: String,
    pub access_token_secret: String,
}

impl Credentials {
    pub fn all(&self) -> Vec<&str> {
        vec![
            &self.consumer_key,
            &self.consumer_secret,
            &self.request_token,
            &self.request_token_secret,
            &self.verifier,
            &self.access_token,
            &self.access_token_secret,
        ]
    }
}

/// The flow's state between steps.
pub struct ManualFlow {
    pub base: String,
    pub discovery: Discovery,
    pub creds: ClientCredentials,
    pub seen: Credentials,
    pub served_by: Vec<(&'static str, String)>,
}

impl ManualFlow {
    /// Discovery, registration and approval through `base`.
    pub async fn register_and_approve(base: &str, name: &str) -> ManualFlow {
        let discovery = client().discover(base, DB).await.unwrap().value;
        let secret = Secret::new(format!("secret-{name}"));
        let key = client()
            .register_consumer(&discovery.oauth_request_consumer_key_url, name, &secret)
            .await
            .unwrap();
        let mut served_by = vec![("register", key.served_by.clone().unwrap_or_default())];
        let key = key.value;
        let approved = browser()
            .approve_with_credentials(
                &discovery.oauth_approval_module_url,
                &key,
                ADMIN_USER,
                &Secret::new(ADMIN_PASSWORD),
            )
            .await
            .unwrap();
        served_by.push(("approve", approved.served_by.unwrap_or_default()));
        ManualFlow {
            base: base.to_owned(),
            creds: ClientCredentials::consumer(key.clone(), secret.clone()),
            seen: Credentials {
                consumer_key: key,
                consumer_secret: secret.expose().to_owned(),
                ..Default::default()
            },
            discovery,
            served_by,
        }
    }

    /// Request token, then the user's authorization (verifier from the redirect).
    pub async fn request_and_authorize(&mut self, location: ParamLocation) {
        let pair = client()
            .request_token(
                &self.discovery.oauth_request_token_url,
                &self.creds,
                CALLBACK,
                location,
            )
            .await
            .unwrap();
        self.served_by
            .push(("request token", pair.served_by.unwrap_or_default()));
        self.seen.request_token = pair.value.token.clone();
        self.seen.request_token_secret = pair.value.secret.expose().to_owned();
        self.creds = self
            .creds
            .with_token(pair.value.token.clone(), pair.value.secret.clone());
        let redirect = browser()
            .authorize(
                &self.discovery.oauth_user_authorization_url,
                &pair.value.token,
                USER,
                &Secret::new(USER_PASSWORD),
            )
            .await
            .unwrap();
        self.served_by
            .push(("authorize", redirect.served_by.unwrap_or_default()));
        let query = redirect.value.split_once('?').map(|(_, q)| q).unwrap_or("");
        let pairs = tokenroute::oauth::percent::parse_form(query.as_bytes()).unwrap();
        self.seen.verifier = pairs
            .iter()
            .find(|(n, _)| n == "oauth_verifier")
            .map(|(_, v)| v.clone())
            .expect("a verifier in the redirect");
    }

    /// Access token, then one protected read.
    pub async fn access_and_read(&mut self, location: ParamLocation) {
        let pair = client()
            .access_token(
                &self.discovery.oauth_access_token_url,
                &self.creds,
                &self.seen.verifier,
                location,
            )
            .await
            .unwrap();
        self.served_by
            .push(("access token", pair.served_by.unwrap_or_default()));
        self.seen.access_token = pair.value.token.clone();
        self.seen.access_token_secret = pair.value.secret.expose().to_owned();
        self.creds = ClientCredentials::consumer(
            self.seen.consumer_key.clone(),
            Secret::new(self.seen.consumer_secret.clone()),
        )
        .with_token(pair.value.token, pair.value.secret);
        let url = format!("{}1", self.discovery.resource_url);
        let read = client()
            .read_resource(&url, &self.creds, location)
            .await
            .unwrap();
        self.served_by
            .push(("read", read.served_by.unwrap_or_default()));
    }

    /// The node that served `step`.
    pub fn node_of(&self, step: &str) -> Option<&str> {
        self.served_by
            .iter()
            .find(|(s, _)| *s == step)
            .map(|(_, n)| n.as_str())
    }

    /// The node that served every step so far, when it is the same one.
    pub fn single_node(&self) -> Option<&str> {
        let first = &self.served_by.first()?.1;
        self.served_by
            .iter()
            .all(|(_, n)| n == first)
            .then_some(first.as_str())
    }
}
