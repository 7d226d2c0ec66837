//! The device authorization grant (RFC 8628): device and user codes, and the verification page.

use super::*;

impl NodeState {
    pub(super) fn device_authorization(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = require_form(parts, body)?;
        let issuer = self.issuer(parts)?;
        let now = Instant::now();
        let mut mem = lock(&self.memory);
        let client_id = self.authenticate(&mem, parts, &form)?;
        if !mem.clients[&client_id].allows_grant(grant::DEVICE_CODE) {
            return Err(Reject::bad(
                error::UNAUTHORIZED_CLIENT,
                "device grant not registered for this client",
            ));
        }
        let scope = field(&form, "scope").unwrap_or("openid");
        let ttl = self.config.device_code_ttl;
        let (device_code, user_code) = mem.new_device(&client_id, scope, now + ttl);
        let verification_uri = format!("{issuer}{}", wire::DEVICE_VERIFICATION);
        let answer = wire::DeviceAuthorization {
            verification_uri_complete: format!(
                "{verification_uri}?user_code={}",
                encode(&user_code)
            ),
            verification_uri,
            device_code,
            user_code,
            expires_in: ttl.as_secs(),
            interval: self.config.device_poll_interval.as_secs(),
        };
        Ok(no_store(json(StatusCode::OK, &answer)))
    }

    /// The user types the user code and their credentials; `approve=no` denies.
    pub(super) fn verify_device(&self, parts: &Parts, body: &[u8]) -> Answer {
        let form = form_of(parts, body);
        let user = field(&form, "username")
            .zip(field(&form, "password"))
            .and_then(|(u, p)| self.users.authenticate(u, p))
            .ok_or(Reject::Page(StatusCode::UNAUTHORIZED, "login failed"))?;
        let user_code = field(&form, "user_code").unwrap_or_default();
        let approve = field(&form, "approve") != Some("no");
        let decided = lock(&self.memory).decide_device(
            user_code,
            approve.then_some(user.name.as_str()),
            Instant::now(),
        );
        if decided {
            Ok(text(
                StatusCode::OK,
                if approve {
                    "device approved"
                } else {
                    "device denied"
                },
            ))
        } else {
            Err(Reject::Page(
                StatusCode::BAD_REQUEST,
                "unknown or expired user code",
            ))
        }
    }
}

pub(super) fn device_page(parts: &Parts) -> Resp {
    let typed = field(&query_of(parts), "user_code")
        .map(|c| {
            c.chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
                .collect::<String>()
        })
        .unwrap_or_default();
    html(&format!(
        "<!doctype html><title>Connect a device</title><form method=\"post\">\
         <input name=\"user_code\" value=\"{typed}\"><input name=\"username\">\
         <input name=\"password\" type=\"password\"><button name=\"approve\" value=\"yes\">Allow</button>\
         <button name=\"approve\" value=\"no\">Deny</button></form>"
    ))
}
