//! Building answers: content types, `Cache-Control: no-store`, RFC 6749 §5.2 error bodies.

use super::*;

pub(super) fn insert(r: &mut Resp, name: http::HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        r.headers_mut().insert(name, v);
    }
}

pub(super) fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Resp {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

pub(super) fn text(status: StatusCode, body: &str) -> Resp {
    with_type(status, "text/plain; charset=utf-8", body.to_string())
}

pub(super) fn html(body: &str) -> Resp {
    with_type(StatusCode::OK, "text/html; charset=utf-8", body.to_string())
}

pub(super) fn json<T: Serialize>(status: StatusCode, value: &T) -> Resp {
    let body = serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string());
    with_type(status, "application/json", body)
}

/// RFC 6749 §5.1: answers carrying credentials must not be cached.
pub(super) fn no_store(mut r: Resp) -> Resp {
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    r
}

pub(super) fn oauth_error(status: StatusCode, code: &str, description: &str) -> Resp {
    let body = wire::ErrorBody {
        error: code.to_string(),
        error_description: Some(description.to_string()),
    };
    no_store(json(status, &body))
}
