//! The admin API's view of a running proxy: [`AdminBackend`] implemented over [`Proxy`].

use std::path::PathBuf;

use serde_json::json;

use super::{AdminBackend, AdminError, BoxFuture};
use crate::config::LoadError;
use crate::proxy::Proxy;
use crate::server::reload::reload_from_file;

/// The running proxy, and the config file `POST /reload` reads.
#[derive(Debug, Clone)]
pub struct ProxyAdmin {
    proxy: Proxy,
    config_path: Option<PathBuf>,
}

impl ProxyAdmin {
    /// The admin view of `proxy`; without a config path, `POST /reload` answers that there is nothing to read.
    pub fn new(proxy: Proxy, config_path: Option<PathBuf>) -> ProxyAdmin {
        ProxyAdmin { proxy, config_path }
    }

    fn node_id(&self, name: &str) -> Result<crate::affinity::NodeId, AdminError> {
        self.proxy
            .current()
            .pool
            .by_name(name)
            .map(|n| n.id)
            .ok_or_else(|| AdminError::UnknownNode(name.to_owned()))
    }
}

impl AdminBackend for ProxyAdmin {
    fn ready(&self) -> bool {
        self.proxy.ready()
    }

    fn status(&self) -> serde_json::Value {
        self.proxy.status_json()
    }

    fn metrics(&self) -> String {
        self.proxy.render_metrics()
    }

    fn reload(&self) -> BoxFuture<Result<serde_json::Value, AdminError>> {
        let proxy = self.proxy.clone();
        let path = self.config_path.clone();
        Box::pin(async move {
            let path = path.ok_or_else(|| {
                AdminError::Failed("this proxy was not started from a config file".to_owned())
            })?;
            let report = tokio::task::spawn_blocking(move || reload_from_file(&proxy, &path))
                .await
                .map_err(|e| AdminError::Failed(e.to_string()))?
                .map_err(|e| match e {
                    LoadError::Read { .. } => AdminError::Failed(e.to_string()),
                    LoadError::Syntax { .. } | LoadError::Invalid { .. } => {
                        AdminError::InvalidConfig(e.to_string())
                    }
                })?;
            Ok(json!(report))
        })
    }

    fn refresh_node(&self, name: &str) -> BoxFuture<Result<serde_json::Value, AdminError>> {
        let proxy = self.proxy.clone();
        let name = name.to_owned();
        Box::pin(async move {
            match proxy.refresh_node(&name).await {
                None => Err(AdminError::UnknownNode(name)),
                Some(false) => Err(AdminError::Failed(format!(
                    "refreshing {name} failed (see the log)"
                ))),
                Some(true) => Ok(json!({ "node": name, "refreshed": true })),
            }
        })
    }

    fn set_draining(&self, name: &str, draining: bool) -> Result<(), AdminError> {
        let id = self.node_id(name)?;
        self.proxy.current().pool.set_draining(id, draining);
        tracing::info!(
            node = name,
            draining,
            "node drain state changed by the admin API"
        );
        Ok(())
    }

    fn lookup(&self, credential: &str) -> Option<serde_json::Value> {
        self.proxy.lookup(credential)
    }

    fn forget_node(&self, name: &str) -> Result<usize, AdminError> {
        let id = self.node_id(name)?;
        Ok(self.proxy.table().remove_node(id))
    }
}
