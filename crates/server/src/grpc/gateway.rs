//! etcd's HTTP/JSON gateway (etcd 3.4 serves grpc-gateway v1 on the client port): `POST
//! /v3/<service>/<method>` (and the same under `/v3beta/`) with a JSON body, answered in JSON,
//! for clients that speak no gRPC (curl, shell and Python tooling, HA managers).
//!
//! Each request is transcoded and put through the gRPC services in-process, so it gets
//! exactly what a gRPC client gets (the same checks, auth, errors):
//! - JSON is proto3's JSON mapping as etcd's gateway writes it: original (snake_case) field
//!   names, 64-bit integers as strings, bytes as base64, enums by name, default values left
//!   out; requests may use either field name form;
//! - the token comes in the `Authorization` header (passed on as `authorization` metadata);
//! - an error is `{"error": message, "message": message, "code": gRPC code}` with the HTTP
//!   status grpc-gateway gives the code (400 InvalidArgument and OutOfRange, 401, 403, 404,
//!   412 FailedPrecondition, 429, 500, 501, 503…);
//! - streams (`/v3/watch`, `/v3/lease/keepalive`, `/v3/election/observe`,
//!   `/v3/maintenance/snapshot`) answer one `{"result": message}` per line, and an error
//!   mid-stream as `{"error": {"grpc_code", "http_code", "message", "http_status"}}`; a
//!   streaming request body is a sequence of JSON objects. A watch stays open after the
//!   request body ends (as etcd's, until the client goes); a keep-alive stream ends with it.
//! - routes are etcd's `google.api.http` options: 3.4's, plus 3.5's `/v3/auth/status` and
//!   `/v3/maintenance/hashkv` (3.4's gateway has only Hash at `/v3/maintenance/hash`).
//! - requests are read as etcd's gateway reads them: unknown fields are ignored, so is
//!   anything after the first JSON value, and an empty body or `null` is the empty message.
//!
//! The JSON mapping is `prost-reflect`'s, over the descriptors of our own `.proto` files
//! (`etcd_v3proto::FILE_DESCRIPTOR_SET`).

use std::sync::OnceLock;

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use bytes::{Buf, Bytes, BytesMut};
use futures_util::StreamExt as _;
use http_body_util::BodyExt as _;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, SerializeOptions};
use tower::ServiceExt as _;

/// The largest request body read, and the largest message of a streamed request (a JSON
/// request is bigger than its protobuf: base64).
const MAX_BODY: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unary,
    /// One request, a stream of answers.
    ServerStream,
    /// A stream of requests and of answers; `keep_open`: the call goes on after the request
    /// body ends.
    Bidi {
        keep_open: bool,
    },
}

struct Route {
    path: &'static str,
    grpc: &'static str,
    request: &'static str,
    response: &'static str,
    kind: Kind,
}

const fn r(
    path: &'static str,
    grpc: &'static str,
    request: &'static str,
    response: &'static str,
    kind: Kind,
) -> Route {
    Route {
        path,
        grpc,
        request,
        response,
        kind,
    }
}

use Kind::{Bidi, ServerStream, Unary};

const E: &str = "etcdserverpb.";

/// Every route: gateway path (after `/v3`), gRPC path, request and response messages.
static ROUTES: &[Route] = &[
    r(
        "/kv/range",
        "/etcdserverpb.KV/Range",
        "RangeRequest",
        "RangeResponse",
        Unary,
    ),
    r(
        "/kv/put",
        "/etcdserverpb.KV/Put",
        "PutRequest",
        "PutResponse",
        Unary,
    ),
    r(
        "/kv/deleterange",
        "/etcdserverpb.KV/DeleteRange",
        "DeleteRangeRequest",
        "DeleteRangeResponse",
        Unary,
    ),
    r(
        "/kv/txn",
        "/etcdserverpb.KV/Txn",
        "TxnRequest",
        "TxnResponse",
        Unary,
    ),
    r(
        "/kv/compaction",
        "/etcdserverpb.KV/Compact",
        "CompactionRequest",
        "CompactionResponse",
        Unary,
    ),
    r(
        "/watch",
        "/etcdserverpb.Watch/Watch",
        "WatchRequest",
        "WatchResponse",
        Bidi { keep_open: true },
    ),
    r(
        "/lease/grant",
        "/etcdserverpb.Lease/LeaseGrant",
        "LeaseGrantRequest",
        "LeaseGrantResponse",
        Unary,
    ),
    r(
        "/lease/revoke",
        "/etcdserverpb.Lease/LeaseRevoke",
        "LeaseRevokeRequest",
        "LeaseRevokeResponse",
        Unary,
    ),
    r(
        "/kv/lease/revoke",
        "/etcdserverpb.Lease/LeaseRevoke",
        "LeaseRevokeRequest",
        "LeaseRevokeResponse",
        Unary,
    ),
    r(
        "/lease/keepalive",
        "/etcdserverpb.Lease/LeaseKeepAlive",
        "LeaseKeepAliveRequest",
        "LeaseKeepAliveResponse",
        Bidi { keep_open: false },
    ),
    r(
        "/lease/timetolive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
        "LeaseTimeToLiveRequest",
        "LeaseTimeToLiveResponse",
        Unary,
    ),
    r(
        "/kv/lease/timetolive",
        "/etcdserverpb.Lease/LeaseTimeToLive",
        "LeaseTimeToLiveRequest",
        "LeaseTimeToLiveResponse",
        Unary,
    ),
    r(
        "/lease/leases",
        "/etcdserverpb.Lease/LeaseLeases",
        "LeaseLeasesRequest",
        "LeaseLeasesResponse",
        Unary,
    ),
    r(
        "/kv/lease/leases",
        "/etcdserverpb.Lease/LeaseLeases",
        "LeaseLeasesRequest",
        "LeaseLeasesResponse",
        Unary,
    ),
    r(
        "/cluster/member/add",
        "/etcdserverpb.Cluster/MemberAdd",
        "MemberAddRequest",
        "MemberAddResponse",
        Unary,
    ),
    r(
        "/cluster/member/remove",
        "/etcdserverpb.Cluster/MemberRemove",
        "MemberRemoveRequest",
        "MemberRemoveResponse",
        Unary,
    ),
    r(
        "/cluster/member/update",
        "/etcdserverpb.Cluster/MemberUpdate",
        "MemberUpdateRequest",
        "MemberUpdateResponse",
        Unary,
    ),
    r(
        "/cluster/member/list",
        "/etcdserverpb.Cluster/MemberList",
        "MemberListRequest",
        "MemberListResponse",
        Unary,
    ),
    r(
        "/cluster/member/promote",
        "/etcdserverpb.Cluster/MemberPromote",
        "MemberPromoteRequest",
        "MemberPromoteResponse",
        Unary,
    ),
    r(
        "/maintenance/alarm",
        "/etcdserverpb.Maintenance/Alarm",
        "AlarmRequest",
        "AlarmResponse",
        Unary,
    ),
    r(
        "/maintenance/status",
        "/etcdserverpb.Maintenance/Status",
        "StatusRequest",
        "StatusResponse",
        Unary,
    ),
    r(
        "/maintenance/defragment",
        "/etcdserverpb.Maintenance/Defragment",
        "DefragmentRequest",
        "DefragmentResponse",
        Unary,
    ),
    r(
        "/maintenance/hash",
        "/etcdserverpb.Maintenance/Hash",
        "HashRequest",
        "HashResponse",
        Unary,
    ),
    r(
        "/maintenance/hashkv",
        "/etcdserverpb.Maintenance/HashKV",
        "HashKVRequest",
        "HashKVResponse",
        Unary,
    ),
    r(
        "/maintenance/snapshot",
        "/etcdserverpb.Maintenance/Snapshot",
        "SnapshotRequest",
        "SnapshotResponse",
        ServerStream,
    ),
    r(
        "/maintenance/transfer-leadership",
        "/etcdserverpb.Maintenance/MoveLeader",
        "MoveLeaderRequest",
        "MoveLeaderResponse",
        Unary,
    ),
    r(
        "/auth/enable",
        "/etcdserverpb.Auth/AuthEnable",
        "AuthEnableRequest",
        "AuthEnableResponse",
        Unary,
    ),
    r(
        "/auth/disable",
        "/etcdserverpb.Auth/AuthDisable",
        "AuthDisableRequest",
        "AuthDisableResponse",
        Unary,
    ),
    r(
        "/auth/status",
        "/etcdserverpb.Auth/AuthStatus",
        "AuthStatusRequest",
        "AuthStatusResponse",
        Unary,
    ),
    r(
        "/auth/authenticate",
        "/etcdserverpb.Auth/Authenticate",
        "AuthenticateRequest",
        "AuthenticateResponse",
        Unary,
    ),
    r(
        "/auth/user/add",
        "/etcdserverpb.Auth/UserAdd",
        "AuthUserAddRequest",
        "AuthUserAddResponse",
        Unary,
    ),
    r(
        "/auth/user/get",
        "/etcdserverpb.Auth/UserGet",
        "AuthUserGetRequest",
        "AuthUserGetResponse",
        Unary,
    ),
    r(
        "/auth/user/list",
        "/etcdserverpb.Auth/UserList",
        "AuthUserListRequest",
        "AuthUserListResponse",
        Unary,
    ),
    r(
        "/auth/user/delete",
        "/etcdserverpb.Auth/UserDelete",
        "AuthUserDeleteRequest",
        "AuthUserDeleteResponse",
        Unary,
    ),
    r(
        "/auth/user/changepw",
        "/etcdserverpb.Auth/UserChangePassword",
        "AuthUserChangePasswordRequest",
        "AuthUserChangePasswordResponse",
        Unary,
    ),
    r(
        "/auth/user/grant",
        "/etcdserverpb.Auth/UserGrantRole",
        "AuthUserGrantRoleRequest",
        "AuthUserGrantRoleResponse",
        Unary,
    ),
    r(
        "/auth/user/revoke",
        "/etcdserverpb.Auth/UserRevokeRole",
        "AuthUserRevokeRoleRequest",
        "AuthUserRevokeRoleResponse",
        Unary,
    ),
    r(
        "/auth/role/add",
        "/etcdserverpb.Auth/RoleAdd",
        "AuthRoleAddRequest",
        "AuthRoleAddResponse",
        Unary,
    ),
    r(
        "/auth/role/get",
        "/etcdserverpb.Auth/RoleGet",
        "AuthRoleGetRequest",
        "AuthRoleGetResponse",
        Unary,
    ),
    r(
        "/auth/role/list",
        "/etcdserverpb.Auth/RoleList",
        "AuthRoleListRequest",
        "AuthRoleListResponse",
        Unary,
    ),
    r(
        "/auth/role/delete",
        "/etcdserverpb.Auth/RoleDelete",
        "AuthRoleDeleteRequest",
        "AuthRoleDeleteResponse",
        Unary,
    ),
    r(
        "/auth/role/grant",
        "/etcdserverpb.Auth/RoleGrantPermission",
        "AuthRoleGrantPermissionRequest",
        "AuthRoleGrantPermissionResponse",
        Unary,
    ),
    r(
        "/auth/role/revoke",
        "/etcdserverpb.Auth/RoleRevokePermission",
        "AuthRoleRevokePermissionRequest",
        "AuthRoleRevokePermissionResponse",
        Unary,
    ),
    r(
        "/lock/lock",
        "/v3lockpb.Lock/Lock",
        "v3lockpb.LockRequest",
        "v3lockpb.LockResponse",
        Unary,
    ),
    r(
        "/lock/unlock",
        "/v3lockpb.Lock/Unlock",
        "v3lockpb.UnlockRequest",
        "v3lockpb.UnlockResponse",
        Unary,
    ),
    r(
        "/election/campaign",
        "/v3electionpb.Election/Campaign",
        "v3electionpb.CampaignRequest",
        "v3electionpb.CampaignResponse",
        Unary,
    ),
    r(
        "/election/proclaim",
        "/v3electionpb.Election/Proclaim",
        "v3electionpb.ProclaimRequest",
        "v3electionpb.ProclaimResponse",
        Unary,
    ),
    r(
        "/election/leader",
        "/v3electionpb.Election/Leader",
        "v3electionpb.LeaderRequest",
        "v3electionpb.LeaderResponse",
        Unary,
    ),
    r(
        "/election/observe",
        "/v3electionpb.Election/Observe",
        "v3electionpb.LeaderRequest",
        "v3electionpb.LeaderResponse",
        ServerStream,
    ),
    r(
        "/election/resign",
        "/v3electionpb.Election/Resign",
        "v3electionpb.ResignRequest",
        "v3electionpb.ResignResponse",
        Unary,
    ),
];

fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(etcd_v3proto::FILE_DESCRIPTOR_SET)
            .expect("the committed descriptors decode")
    })
}

fn message(name: &str) -> MessageDescriptor {
    let full = if name.contains('.') {
        name.to_string()
    } else {
        format!("{E}{name}")
    };
    pool()
        .get_message_by_name(&full)
        .unwrap_or_else(|| panic!("no message {full} in the descriptors"))
}

/// The gateway, for the client router (nested under `/v3` and `/v3beta`): `grpc` is the
/// gRPC services' router, which it calls in-process.
pub fn router(grpc: axum::Router) -> axum::Router {
    axum::Router::new().fallback(move |req: Request<Body>| handle(grpc.clone(), req))
}

/// The HTTP status grpc-gateway v1 answers a gRPC code with.
fn http_status(code: i32) -> StatusCode {
    match code {
        0 => StatusCode::OK,
        1 => StatusCode::REQUEST_TIMEOUT,
        3 | 11 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 | 10 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        9 => StatusCode::PRECONDITION_FAILED,
        12 => StatusCode::NOT_IMPLEMENTED,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// grpc-gateway's error body.
fn error(code: i32, message: &str) -> Response<Body> {
    let m = serde_json::Value::from(message);
    let body = format!(r#"{{"error":{m},"message":{m},"code":{code}}}"#);
    json_response(http_status(code), body)
}

fn plain(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::from(format!(
        "{}\n",
        status.canonical_reason().unwrap_or("")
    )));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// A JSON value as the protobuf bytes of message `desc`, framed for gRPC (unknown fields
/// ignored; `null` is the empty message).
fn frame_of(desc: &MessageDescriptor, value: serde_json::Value) -> Result<Bytes, String> {
    let mut value = match value {
        serde_json::Value::Null => serde_json::Value::Object(Default::default()),
        v => v,
    };
    strip_unknown(desc, &mut value);
    let msg = DynamicMessage::deserialize(desc.clone(), value).map_err(|e| e.to_string())?;
    let bytes = msg.encode_to_vec();
    let mut f = BytesMut::with_capacity(5 + bytes.len());
    f.extend_from_slice(&[0]);
    f.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    f.extend_from_slice(&bytes);
    Ok(f.freeze())
}

/// Drops the members of `value` that name no field of `desc` (by proto or JSON name), at
/// every depth: etcd's gateway ignores them (an unknown enum name is still an error).
fn strip_unknown(desc: &MessageDescriptor, value: &mut serde_json::Value) {
    let serde_json::Value::Object(map) = value else {
        return;
    };
    map.retain(|k, _| {
        desc.get_field_by_name(k).is_some() || desc.get_field_by_json_name(k).is_some()
    });
    for (k, v) in map.iter_mut() {
        let Some(field) = desc
            .get_field_by_name(k)
            .or_else(|| desc.get_field_by_json_name(k))
        else {
            continue;
        };
        if field.is_map() {
            continue;
        }
        if let prost_reflect::Kind::Message(inner) = field.kind() {
            match v {
                serde_json::Value::Array(items) => {
                    items.iter_mut().for_each(|i| strip_unknown(&inner, i))
                }
                other => strip_unknown(&inner, other),
            }
        }
    }
}

/// Protobuf bytes of message `desc` as gateway JSON (fields in field-number order, as
/// etcd's).
fn json_of(desc: &MessageDescriptor, bytes: &[u8]) -> Result<String, String> {
    let msg = DynamicMessage::decode(desc.clone(), bytes).map_err(|e| e.to_string())?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut out = Vec::new();
    msg.serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        .map_err(|e| e.to_string())?;
    String::from_utf8(out).map_err(|e| e.to_string())
}

/// The gRPC status in `headers` (trailers, or a trailers-only answer), if any.
fn grpc_status(headers: &axum::http::HeaderMap) -> Option<(i32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(crate::http::form::percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

/// Splits the first complete gRPC frame's message off the front of `buf`, if there is one.
fn take_frame(buf: &mut BytesMut) -> Option<Bytes> {
    if buf.len() < 5 {
        return None;
    }
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
    if buf.len() < 5 + len {
        return None;
    }
    buf.advance(5);
    Some(buf.split_to(len).freeze())
}

/// Complete JSON values off the front of `buf` (a request stream); an error for malformed
/// JSON.
fn take_values(buf: &mut BytesMut) -> Result<Vec<serde_json::Value>, String> {
    let mut values = Vec::new();
    let mut it = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    let mut used = 0;
    loop {
        match it.next() {
            Some(Ok(v)) => {
                values.push(v);
                used = it.byte_offset();
            }
            Some(Err(e)) if e.is_eof() => break,
            Some(Err(e)) => return Err(e.to_string()),
            None => break,
        }
    }
    buf.advance(used);
    Ok(values)
}

/// What reading a request stream gave.
enum Read {
    /// The complete JSON values now in hand (at least one).
    Values(Vec<serde_json::Value>),
    /// The body ended (with no complete value left).
    End,
    /// Malformed JSON.
    Malformed(String),
    /// A value outgrew [`MAX_BODY`] before it was complete.
    TooLarge,
}

/// Reads `data` into `buf` until it holds complete JSON values, and takes them.
async fn next_values(data: &mut axum::body::BodyDataStream, buf: &mut BytesMut) -> Read {
    loop {
        match take_values(buf) {
            Err(e) => return Read::Malformed(e),
            Ok(values) if !values.is_empty() => return Read::Values(values),
            Ok(_) => {}
        }
        if buf.len() > MAX_BODY {
            return Read::TooLarge;
        }
        match data.next().await {
            Some(Ok(chunk)) => buf.extend_from_slice(&chunk),
            _ => return Read::End,
        }
    }
}

async fn handle(grpc: axum::Router, req: Request<Body>) -> Response<Body> {
    let path = req.uri().path().to_string();
    if req.method() == Method::OPTIONS {
        // A CORS preflight: etcd answers it empty.
        return Response::new(Body::empty());
    }
    if path.is_empty() || path == "/" {
        // `/v3` itself: Go's mux redirects to the directory, as etcd's gateway answers.
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
        r.headers_mut()
            .insert(header::LOCATION, HeaderValue::from_static("/v3/"));
        return r;
    }
    let Some(route) = ROUTES.iter().find(|r| r.path == path) else {
        return plain(StatusCode::NOT_FOUND);
    };
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED);
    }
    let (request_desc, response_desc) = (message(route.request), message(route.response));
    let authorization = req.headers().get(header::AUTHORIZATION).cloned();
    let (parts, body) = req.into_parts();
    let grpc_body = match route.kind {
        Unary | ServerStream => {
            let bytes = match crate::http::body::read_limited(&parts.headers, body, MAX_BODY).await
            {
                Ok(b) => b,
                Err(crate::http::body::BodyError::TooLarge) => {
                    return error(
                        3,
                        &format!("etcd-rs: the request is too large (over {MAX_BODY} bytes)"),
                    )
                }
                Err(crate::http::body::BodyError::Read(e)) => {
                    return error(3, &format!("reading the request: {e}"))
                }
            };
            // The first JSON value; anything after it is ignored, as etcd's gateway does.
            let value = match serde_json::Deserializer::from_slice(&bytes)
                .into_iter::<serde_json::Value>()
                .next()
            {
                None => serde_json::Value::Object(Default::default()),
                Some(Ok(v)) => v,
                Some(Err(e)) => return error(3, &e.to_string()),
            };
            match frame_of(&request_desc, value) {
                Ok(f) => Body::from(f),
                Err(e) => return error(3, &e),
            }
        }
        Bidi { keep_open } => {
            // The first message is read before the call, so that a malformed one is answered
            // as etcd's gateway answers it (code 2, HTTP 500).
            let mut data = body.into_data_stream();
            let mut buf = BytesMut::new();
            let first: Vec<Result<Bytes, std::io::Error>> =
                match next_values(&mut data, &mut buf).await {
                    Read::Values(values) => {
                        let mut frames = Vec::new();
                        for v in values {
                            match frame_of(&request_desc, v) {
                                Ok(f) => frames.push(Ok(f)),
                                Err(e) => return error(2, &e),
                            }
                        }
                        frames
                    }
                    Read::End => Vec::new(),
                    Read::Malformed(e) => return error(2, &e),
                    Read::TooLarge => {
                        return error(3, "etcd-rs: a streamed request message is too large")
                    }
                };
            // Later messages: a malformed or oversized one ends the request stream.
            let desc = request_desc.clone();
            let rest = futures_util::stream::unfold((data, buf), move |(mut body, mut buf)| {
                let desc = desc.clone();
                async move {
                    let Read::Values(values) = next_values(&mut body, &mut buf).await else {
                        return None;
                    };
                    let frames: Vec<Result<Bytes, std::io::Error>> = values
                        .into_iter()
                        .filter_map(|v| frame_of(&desc, v).ok())
                        .map(Ok)
                        .collect();
                    Some((futures_util::stream::iter(frames), (body, buf)))
                }
            })
            .flatten();
            let frames = futures_util::stream::iter(first).chain(rest);
            if keep_open {
                Body::from_stream(frames.chain(futures_util::stream::pending()))
            } else {
                Body::from_stream(frames)
            }
        }
    };
    let mut call = Request::builder()
        .method(Method::POST)
        .uri(route.grpc)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header("te", "trailers");
    if let Some(a) = authorization {
        call = call.header("authorization", a);
    }
    let call = match call.body(grpc_body) {
        Ok(c) => c,
        Err(e) => return error(13, &e.to_string()),
    };
    let answer = match grpc.oneshot(call).await {
        Ok(a) => a,
        Err(never) => match never {},
    };
    if let Some((code, message)) = grpc_status(answer.headers()).filter(|(c, _)| *c != 0) {
        return match route.kind {
            Unary => error(code, &message),
            // A stream that failed at once: its one line is the stream error.
            ServerStream | Bidi { .. } => {
                json_response(http_status(code), stream_error(code, &message))
            }
        };
    }
    let mut body = answer.into_body();
    match route.kind {
        Unary => {
            let mut buf = BytesMut::new();
            let mut status = None;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => buf.extend_from_slice(&d),
                        Err(f) => {
                            if let Ok(t) = f.into_trailers() {
                                status = grpc_status(&t);
                            }
                        }
                    },
                    Err(e) => return error(14, &e.to_string()),
                }
            }
            if let Some((code, message)) = status.filter(|(c, _)| *c != 0) {
                return error(code, &message);
            }
            let Some(msg) = take_frame(&mut buf) else {
                return error(2, "empty response");
            };
            match json_of(&response_desc, &msg) {
                Ok(v) => json_response(StatusCode::OK, v),
                Err(e) => error(13, &e),
            }
        }
        ServerStream | Bidi { .. } => stream_answers(body, response_desc).await,
    }
}

/// grpc-gateway's line for a stream that failed.
fn stream_error(code: i32, message: &str) -> String {
    let http = http_status(code);
    let m = serde_json::Value::from(message);
    let status = serde_json::Value::from(http.canonical_reason().unwrap_or(""));
    format!(
        r#"{{"error":{{"grpc_code":{code},"http_code":{},"message":{m},"http_status":{status}}}}}"#,
        http.as_u16()
    )
}

/// One line per answer: `{"result": …}`, or at the end `{"error": …}` if the call failed.
/// The status is an error's only when the call fails before its first answer.
async fn stream_answers(body: Body, desc: MessageDescriptor) -> Response<Body> {
    enum Item {
        Line(String),
        Failed(i32, String),
    }
    let lines = futures_util::stream::unfold(
        (body, BytesMut::new(), false),
        move |(mut body, mut buf, done)| {
            let desc = desc.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(msg) = take_frame(&mut buf) {
                        let item = match json_of(&desc, &msg) {
                            Ok(v) => Item::Line(format!("{{\"result\":{v}}}")),
                            Err(e) => Item::Failed(13, e),
                        };
                        return Some((item, (body, buf, false)));
                    }
                    match body.frame().await {
                        Some(Ok(f)) => match f.into_data() {
                            Ok(d) => buf.extend_from_slice(&d),
                            Err(f) => {
                                if let Some((code, message)) = f
                                    .into_trailers()
                                    .ok()
                                    .and_then(|t| grpc_status(&t))
                                    .filter(|(c, _)| *c != 0)
                                {
                                    return Some((Item::Failed(code, message), (body, buf, true)));
                                }
                            }
                        },
                        Some(Err(e)) => {
                            return Some((Item::Failed(14, e.to_string()), (body, buf, true)))
                        }
                        None => return None,
                    }
                }
            }
        },
    );
    let mut lines = Box::pin(lines);
    let first = lines.next().await;
    let status = match &first {
        Some(Item::Failed(code, _)) => http_status(*code),
        _ => StatusCode::OK,
    };
    let to_line = move |item: Item| -> Result<Bytes, std::io::Error> {
        let mut line = match item {
            Item::Line(l) => l,
            Item::Failed(code, message) => stream_error(code, &message),
        };
        line.push('\n');
        Ok(Bytes::from(line))
    };
    let rest = futures_util::stream::iter(first).chain(lines).map(to_line);
    let mut r = Response::new(Body::from_stream(rest));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_messages_the_descriptors_have() {
        for r in ROUTES {
            message(r.request);
            message(r.response);
            assert!(r.grpc.starts_with('/'), "{}", r.grpc);
        }
    }

    #[test]
    fn json_crosses_with_etcds_names_and_encodings() {
        let desc = message("PutRequest");
        let value =
            serde_json::json!({"key": "Zm9v", "value": "YmFy", "lease": "7", "prevKv": true});
        let frame = frame_of(&desc, value).unwrap();
        let put = etcd_v3proto::etcdserverpb::PutRequest::decode(&frame[5..]).unwrap();
        assert_eq!(
            (&put.key[..], &put.value[..], put.lease, put.prev_kv),
            (&b"foo"[..], &b"bar"[..], 7, true)
        );
        let resp = etcd_v3proto::etcdserverpb::RangeResponse {
            header: Some(etcd_v3proto::etcdserverpb::ResponseHeader {
                cluster_id: 1,
                member_id: 2,
                revision: 3,
                raft_term: 4,
            }),
            kvs: vec![etcd_v3proto::mvccpb::KeyValue {
                key: Bytes::from_static(b"foo"),
                create_revision: 3,
                mod_revision: 3,
                version: 1,
                value: Bytes::from_static(b"bar"),
                lease: 0,
            }],
            more: false,
            count: 1,
        };
        let json = json_of(&message("RangeResponse"), &resp.encode_to_vec()).unwrap();
        assert_eq!(
            json,
            r#"{"header":{"cluster_id":"1","member_id":"2","revision":"3","raft_term":"4"},"kvs":[{"key":"Zm9v","create_revision":"3","mod_revision":"3","version":"1","value":"YmFy"}],"count":"1"}"#
        );
    }

    #[test]
    fn request_streams_split_into_values_and_frames() {
        let mut buf = BytesMut::from(&b"{\"a\":1} {\"b\":2}\n{\"c\""[..]);
        let v = take_values(&mut buf).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(&buf[..], b"\n{\"c\"");
        let mut bad = BytesMut::from(&b"{\"a\":}"[..]);
        assert!(take_values(&mut bad).is_err());
        let mut frames = BytesMut::from(&[0u8, 0, 0, 0, 2, 9, 9, 0, 0, 0, 0, 1, 8, 0, 0][..]);
        assert_eq!(take_frame(&mut frames), Some(Bytes::from_static(&[9, 9])));
        assert_eq!(take_frame(&mut frames), Some(Bytes::from_static(&[8])));
        assert_eq!(take_frame(&mut frames), None);
        assert_eq!(frames.len(), 2);
        assert_eq!(crate::http::form::percent_decode("a%20b%zz"), "a b%zz");
    }
}
