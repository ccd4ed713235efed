//! The HTTP server: one handler for every path and method, as the Query protocol has no
//! routes. It gathers the parameters (query string and form body), authenticates, and hands
//! the action to [`crate::dispatch`].

use crate::error;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use corral_control::{Cloud, RegionStatus};
use corral_types::{Error, ErrorCode};
use std::sync::Arc;

/// Largest request body accepted: RunInstances with 16 KiB of user data, base64, fits well.
const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Clone)]
pub struct ApiState {
    pub cloud: Arc<Cloud>,
}

pub fn router(state: ApiState) -> Router {
    Router::new().fallback(handle).with_state(state)
}

/// A request id in AWS's format (a UUID).
pub fn request_id() -> String {
    let b: [u8; 16] = rand::random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

fn xml_response(status: u16, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, [("content-type", "text/xml;charset=UTF-8")], body).into_response()
}

use crate::body_deadline::ReadFailure;

async fn handle(State(state): State<ApiState>, method: Method, uri: Uri, headers: HeaderMap, body: Body) -> Response {
    let request_id = request_id();
    let started = std::time::Instant::now();
    // Read here, under the limit (and the listener's deadline), so a body over it gets an EC2
    // error like any other.
    let read = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        let e = match crate::body_deadline::classify(&e) {
            ReadFailure::TooLarge => {
                Error::new(ErrorCode::RequestEntityTooLarge, format!("The request body is larger than {MAX_BODY_BYTES} bytes."))
            }
            ReadFailure::TimedOut => Error::new(ErrorCode::RequestTimeout, "The request body did not arrive in time."),
            ReadFailure::Other => Error::new(ErrorCode::InvalidParameterValue, "The request body could not be read.")
                .with_internal(format!("reading a request body: {e}")),
        };
        (None, e)
    });
    let served = match &read {
        Ok(body) => serve(&state, &method, &uri, &headers, body, &request_id).await,
        Err(e) => Err(e.clone()),
    };
    let (status, body, action) = match served {
        Ok((action, body)) => (200, body, action),
        Err((action, e)) => {
            let (status, body) = match &action {
                Some(a) if a == "GetCallerIdentity" => crate::sts::render_error(&e, &request_id),
                _ => error::render(&e, &request_id),
            };
            (status, body, action)
        }
    };
    tracing::info!(request_id, action = action.as_deref().unwrap_or("-"), status, ms = started.elapsed().as_secs_f64() * 1000.0, "request");
    let mut resp = xml_response(status, body);
    if let Ok(v) = request_id.parse() {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

type Failure = (Option<String>, Error);

async fn serve(
    state: &ApiState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Result<(Option<String>, String), Failure> {
    let query = uri.query().unwrap_or("");
    // Read as the signature reads it (`+` a plus), not as a form (`+` a space).
    let mut params: Vec<(String, String)> = corral_auth::sigv4::query_pairs(query).collect();
    let is_form =
        headers.get("content-type").and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if *method == Method::POST && (is_form || headers.get("content-type").is_none()) {
        params.extend(form_urlencoded::parse(body).into_owned());
    }
    let action = params.iter().find(|(k, _)| k == "Action").map(|(_, v)| v.clone());

    // Authenticate before anything else, as AWS does.
    let header_pairs: Vec<(String, String)> =
        headers.iter().map(|(k, v)| (k.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect();
    let signed = corral_auth::sigv4::SignedRequest { method: method.as_str(), path: uri.path(), query, headers: &header_pairs, body };
    let home = state.cloud.home();
    let store = home.store().clone();
    let lookup = |id: &str| store.read(|tx| tx.access_key_get(id)).ok().flatten().map(|k| k.secret_access_key);
    let regions = |region: &str| match state.cloud.status(region) {
        RegionStatus::Served => Ok(()),
        RegionStatus::NotEnabled => Err(corral_auth::sigv4::AuthError::RegionNotEnabled { region: region.to_string() }),
        RegionStatus::Unknown => Err(corral_auth::sigv4::invalid_region(region)),
    };
    let verified =
        corral_auth::sigv4::verify(&signed, chrono::Utc::now(), lookup, regions).map_err(|e| (action.clone(), error::from_auth(&e)))?;

    let Some(action_name) = action.clone() else {
        return Err((None, Error::new(ErrorCode::MissingAction, "The request must contain the parameter Action")));
    };
    if verified.service == "sts" || action_name == "GetCallerIdentity" {
        return crate::sts::handle(home, &verified, &action_name, request_id).map(|b| (action.clone(), b)).map_err(|e| (action.clone(), e));
    }
    let rest: Vec<(String, String)> =
        params.into_iter().filter(|(k, _)| k != "Action" && k != "Version" && !k.starts_with("X-Amz-") && k != "AWSAccessKeyId").collect();
    let control = state.cloud.region(&verified.region).await.map_err(|e| (action.clone(), e))?;
    crate::dispatch::dispatch(&control, &action_name, &rest, request_id).await.map(|b| (action.clone(), b)).map_err(|e| (action.clone(), e))
}
