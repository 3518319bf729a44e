//! The HTTP endpoints: thin handlers (parse → authenticate → validate → append/read → reply).
//!
//! Writes are answered under both `/api/statistics/` (upstream) and `/api/stats/` (Flexisip's default
//! prefix), with or without a trailing slash. Each write handler authenticates itself, after the body check,
//! because upstream reports a body that is not JSON (400) before authentication.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post, MethodRouter};
use axum::{Json, Router};
use flexiapi_auth::{Access, Authenticated, Authenticator};
use flexiapi_core::http::pagination::{page_number, paginate};
use flexiapi_core::http::{
    text_response, ClientHost, HttpError, Locale, RequestSpace, ValidationErrors,
};
use flexiapi_core::model::Account;
use flexiapi_core::Db;
use http::request::Parts;
use http::{HeaderValue, StatusCode};
use serde::de::DeserializeOwned;

use crate::event::{Event, Identity};
use crate::input::{self, Parsed};
use crate::log::{EventLog, Outcome, StatsReader};
use crate::metrics;

/// Listings page size (upstream's call log paginator).
const PER_PAGE: u64 = 30;

/// What the handlers share.
#[derive(Clone)]
pub struct IngestState {
    /// Where events go.
    pub log: Arc<dyn EventLog>,
    /// Where listings come from.
    pub reader: Arc<dyn StatsReader>,
    /// Who the callers are.
    pub auth: Arc<Authenticator>,
    /// The account database (account lookups of the admin listings).
    pub db: Db,
    /// Largest accepted body.
    pub max_body_bytes: usize,
}

/// Every statistics route, with full paths.
pub fn router(state: IngestState) -> Router {
    let writes: [(&str, MethodRouter<IngestState>); 9] = [
        ("messages", post(message_created)),
        (
            "messages/{message_id}/to/{to}/devices/{device_id}",
            patch(message_device),
        ),
        ("calls", post(call_created)),
        ("calls/{call_id}/devices/{device_id}", patch(call_device)),
        ("calls/{call_id}", patch(call_ended)),
        ("conferences", post(conference_created)),
        (
            "conferences/{conference_id}",
            patch(conference_ended).get(conference_show),
        ),
        (
            "conferences/{conference_id}/participants/{participant}/events",
            post(participant_event),
        ),
        (
            "conferences/{conference_id}/participants/{participant}/devices/{device_id}/events",
            post(participant_device_event),
        ),
    ];
    let mut router = Router::new();
    for prefix in ["/api/statistics/", "/api/stats/"] {
        for (path, method) in &writes {
            router = router
                .route(&format!("{prefix}{path}"), method.clone())
                .route(&format!("{prefix}{path}/"), method.clone());
        }
    }
    router
        .route("/api/accounts/me/statistics/calls", get(my_calls))
        .route("/api/accounts/{id}/statistics/calls", get(account_calls))
        .route("/api/accounts/me/statistics/messages", get(my_messages))
        .route(
            "/api/accounts/{id}/statistics/messages",
            get(account_messages),
        )
        .with_state(state)
}

// ---------------------------------------------------------------------------------------------------------
// Writes

/// The common pipeline of every write.
async fn ingest<T: DeserializeOwned>(
    state: &IngestState,
    route: &'static str,
    model: &'static str,
    request: Request,
    build: impl FnOnce(Parsed<T>, Locale) -> Result<Event, ValidationErrors>,
) -> Response {
    let response = match ingest_steps(state, model, request, build).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    metrics::request(route, response.status().as_u16());
    response
}

async fn ingest_steps<T: DeserializeOwned>(
    state: &IngestState,
    model: &'static str,
    request: Request,
    build: impl FnOnce(Parsed<T>, Locale) -> Result<Event, ValidationErrors>,
) -> Result<Response, HttpError> {
    let (parts, body) = request.into_parts();
    let bytes = read_body(&parts, body, state.max_body_bytes).await?;
    let parsed = Parsed::<T>::new(
        bytes,
        header_is_json(&parts, http::header::CONTENT_TYPE),
        header_is_json(&parts, http::header::ACCEPT),
    )
    .map_err(|invalid| HttpError::invalid_json(invalid.0))?;
    let (_, challenges) = authenticate(state, &parts, Access::Admin).await?;
    let event =
        build(parsed, Locale::from_headers(&parts.headers)).map_err(HttpError::validation)?;
    let outcome = state.log.append(event).await.map_err(|e| e.into_http())?;
    let mut response = reply(outcome, model);
    for line in challenges {
        response
            .headers_mut()
            .append(http::header::WWW_AUTHENTICATE, line);
    }
    Ok(response)
}

/// The body, refused with 413 beyond the limit (checked on `Content-Length` first when there is one).
async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<bytes::Bytes, HttpError> {
    let too_large = || HttpError::message(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large");
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

fn header_is_json(parts: &Parts, name: http::HeaderName) -> bool {
    parts
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("/json") || v.contains("+json"))
}

async fn authenticate(
    state: &IngestState,
    parts: &Parts,
    access: Access,
) -> Result<(Authenticated, Vec<HeaderValue>), HttpError> {
    state
        .auth
        .authenticate(parts, access)
        .await
        .map_err(|e| e.into_http())
}

/// The answer upstream gives for an outcome.
fn reply(outcome: Outcome, model: &str) -> Response {
    match outcome {
        Outcome::Created => text_response(StatusCode::OK, "1"),
        Outcome::Duplicate | Outcome::UnknownParent => {
            HttpError::message(StatusCode::BAD_REQUEST, "Database error").into_response()
        }
        Outcome::NotFound => HttpError::not_found(model).into_response(),
        Outcome::Upserted { created, row } => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            (status, Json(row)).into_response()
        }
        Outcome::Ended(body) => (StatusCode::OK, Json(body)).into_response(),
    }
}

async fn message_created(State(state): State<IngestState>, request: Request) -> Response {
    ingest(
        &state,
        "messages",
        "StatisticsMessage",
        request,
        input::message_created,
    )
    .await
}

async fn message_device(
    State(state): State<IngestState>,
    Path((message_id, to, device_id)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    ingest(
        &state,
        "messages_device",
        "StatisticsMessageDevice",
        request,
        |parsed, locale| input::message_device(parsed, &message_id, &to, &device_id, locale),
    )
    .await
}

async fn call_created(State(state): State<IngestState>, request: Request) -> Response {
    ingest(
        &state,
        "calls",
        "StatisticsCall",
        request,
        input::call_created,
    )
    .await
}

async fn call_device(
    State(state): State<IngestState>,
    Path((call_id, device_id)): Path<(String, String)>,
    request: Request,
) -> Response {
    ingest(
        &state,
        "calls_device",
        "StatisticsCallDevice",
        request,
        |parsed, locale| input::call_device(parsed, &call_id, &device_id, locale),
    )
    .await
}

async fn call_ended(
    State(state): State<IngestState>,
    Path(call_id): Path<String>,
    request: Request,
) -> Response {
    ingest(
        &state,
        "calls_end",
        "StatisticsCall",
        request,
        |parsed, locale| input::call_ended(parsed, &call_id, locale),
    )
    .await
}

async fn conference_created(State(state): State<IngestState>, request: Request) -> Response {
    ingest(
        &state,
        "conferences",
        "StatisticsConference",
        request,
        input::conference_created,
    )
    .await
}

async fn conference_ended(
    State(state): State<IngestState>,
    Path(conference_id): Path<String>,
    request: Request,
) -> Response {
    ingest(
        &state,
        "conferences_end",
        "StatisticsConference",
        request,
        |parsed, locale| input::conference_ended(parsed, &conference_id, locale),
    )
    .await
}

async fn participant_event(
    State(state): State<IngestState>,
    Path((conference_id, participant)): Path<(String, String)>,
    request: Request,
) -> Response {
    ingest(
        &state,
        "conferences_participant",
        "StatisticsConference",
        request,
        |parsed, locale| input::participant_event(parsed, &conference_id, &participant, locale),
    )
    .await
}

async fn participant_device_event(
    State(state): State<IngestState>,
    Path((conference_id, participant, device_id)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    ingest(
        &state,
        "conferences_participant_device",
        "StatisticsConference",
        request,
        |parsed, locale| {
            input::participant_device_event(
                parsed,
                &conference_id,
                &participant,
                &device_id,
                locale,
            )
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------------------
// Reads

/// `?page=N`.
#[derive(serde::Deserialize)]
struct PageQuery {
    page: Option<String>,
}

/// What a listing lists.
#[derive(Clone, Copy)]
enum Listing {
    Calls,
    Messages,
}

impl Listing {
    fn segment(self) -> &'static str {
        match self {
            Listing::Calls => "calls",
            Listing::Messages => "messages",
        }
    }
}

async fn my_calls(
    State(state): State<IngestState>,
    query: Query<PageQuery>,
    request: Request,
) -> Response {
    listing(&state, None, Listing::Calls, query.0, request).await
}

async fn account_calls(
    State(state): State<IngestState>,
    Path(id): Path<String>,
    query: Query<PageQuery>,
    request: Request,
) -> Response {
    listing(&state, Some(id), Listing::Calls, query.0, request).await
}

async fn my_messages(
    State(state): State<IngestState>,
    query: Query<PageQuery>,
    request: Request,
) -> Response {
    listing(&state, None, Listing::Messages, query.0, request).await
}

async fn account_messages(
    State(state): State<IngestState>,
    Path(id): Path<String>,
    query: Query<PageQuery>,
    request: Request,
) -> Response {
    listing(&state, Some(id), Listing::Messages, query.0, request).await
}

/// A paginated listing of `me` (user access) or of account `{id}` (admin access, domain-scoped).
async fn listing(
    state: &IngestState,
    account_id: Option<String>,
    what: Listing,
    query: PageQuery,
    request: Request,
) -> Response {
    let result = async {
        let (parts, _) = request.into_parts();
        let access = if account_id.is_some() {
            Access::Admin
        } else {
            Access::User
        };
        let (caller, challenges) = authenticate(state, &parts, access).await?;
        let (who, segment) = match &account_id {
            None => (caller.account.clone(), "me".to_owned()),
            Some(raw) => (
                Arc::new(visible_account(state, &parts, &caller, raw).await?),
                raw.clone(),
            ),
        };
        let identity = Identity {
            username: who.username.clone(),
            domain: who.domain.clone(),
        };
        let page = page_number(query.page.as_deref());
        let offset = (page - 1).saturating_mul(PER_PAGE);
        let listed = match what {
            Listing::Calls => state.reader.calls(&identity, offset, PER_PAGE).await,
            Listing::Messages => state.reader.messages(&identity, offset, PER_PAGE).await,
        }
        .map_err(|e| e.into_http())?;
        let base = parts
            .extensions
            .get::<ClientHost>()
            .map(ClientHost::base_url)
            .unwrap_or_default();
        let path = format!(
            "{base}/api/accounts/{segment}/statistics/{}",
            what.segment()
        );
        let body = paginate(
            listed.items,
            listed.total,
            page,
            PER_PAGE,
            &path,
            Locale::from_headers(&parts.headers),
        );
        let mut response = Json(body).into_response();
        for line in challenges {
            response
                .headers_mut()
                .append(http::header::WWW_AUTHENTICATE, line);
        }
        Ok::<_, HttpError>(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// Account `{id}` as an admin may see it: same domain as the request Space unless super admin.
async fn visible_account(
    state: &IngestState,
    parts: &Parts,
    caller: &Authenticated,
    raw: &str,
) -> Result<Account, HttpError> {
    let missing = || HttpError::model_not_found("Account", raw);
    let id: i64 = raw.parse().map_err(|_| missing())?;
    let account = Account::find(&state.db, id).await?.ok_or_else(missing)?;
    if !caller.is_super_admin {
        let space = parts
            .extensions
            .get::<RequestSpace>()
            .map(|s| s.0.domain.clone());
        if space.as_deref() != Some(account.domain.as_str()) {
            return Err(missing());
        }
    }
    Ok(account)
}

/// `GET /api/statistics/conferences/{id}` (admin): the conference and its participant events.
async fn conference_show(
    State(state): State<IngestState>,
    Path(conference_id): Path<String>,
    request: Request,
) -> Response {
    let result = async {
        let (parts, _) = request.into_parts();
        let (_, challenges) = authenticate(&state, &parts, Access::Admin).await?;
        let conference = state
            .reader
            .conference(&conference_id)
            .await
            .map_err(|e| e.into_http())?
            .ok_or_else(|| HttpError::not_found("StatisticsConference"))?;
        let mut response = Json(conference).into_response();
        for line in challenges {
            response
                .headers_mut()
                .append(http::header::WWW_AUTHENTICATE, line);
        }
        Ok::<_, HttpError>(response)
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}
