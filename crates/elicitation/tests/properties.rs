//! Property tests: inputs nobody thought of, generated.
//!
//! - Form schemas of the MCP subset and answers to them, each checked by `schema` and by a small
//!   reference model of the rules written here from the specification: the two must agree on
//!   whether an answer is valid and on which fields are at fault.
//! - Random bodies, headers and query strings into every route (the HTTP API and the MCP
//!   gateway): no panic, no 5xx; every refusal is a 4xx problem document whose `status` is the
//!   response's; and a refused request leaves the store as it was.
//!
//! Case counts are bounded (`cases` below) so the suite takes seconds.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

use elicitation::Timestamp;
use elicitation::api::{self, Request, Response};
use elicitation::mcp::{self, Env};
use elicitation::schema::{validate_content, validate_schema};
use elicitation::service::Limits;
use elicitation::store::{MemoryStore, Store};
use elicitation::token::{self, Realm};
use elicitation::wait::Changes;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Schemas and answers against a reference model
// ---------------------------------------------------------------------------------------------

/// One property of a form schema, as the reference model sees it.
#[derive(Debug, Clone)]
enum Prop {
    Text {
        min: Option<u64>,
        max: Option<u64>,
    },
    Number {
        integer: bool,
        min: Option<i64>,
        max: Option<i64>,
    },
    Flag,
    One {
        options: Vec<String>,
        titled: bool,
    },
    Many {
        options: Vec<String>,
        min: Option<u64>,
        max: Option<u64>,
        titled: bool,
    },
}

impl Prop {
    fn to_json(&self) -> Value {
        let mut p = Map::new();
        let bounds =
            |p: &mut Map<String, Value>, lo: &str, hi: &str, min: Option<u64>, max: Option<u64>| {
                if let Some(m) = min {
                    p.insert(lo.into(), json!(m));
                }
                if let Some(m) = max {
                    p.insert(hi.into(), json!(m));
                }
            };
        let titled = |options: &[String]| -> Value {
            options
                .iter()
                .map(|o| json!({ "const": o, "title": o.to_uppercase() }))
                .collect()
        };
        match self {
            Self::Text { min, max } => {
                p.insert("type".into(), json!("string"));
                bounds(&mut p, "minLength", "maxLength", *min, *max);
            }
            Self::Number { integer, min, max } => {
                p.insert(
                    "type".into(),
                    json!(if *integer { "integer" } else { "number" }),
                );
                if let Some(m) = min {
                    p.insert("minimum".into(), json!(m));
                }
                if let Some(m) = max {
                    p.insert("maximum".into(), json!(m));
                }
            }
            Self::Flag => {
                p.insert("type".into(), json!("boolean"));
            }
            Self::One {
                options,
                titled: false,
            } => {
                p.insert("type".into(), json!("string"));
                p.insert("enum".into(), json!(options));
            }
            Self::One {
                options,
                titled: true,
            } => {
                p.insert("type".into(), json!("string"));
                p.insert("oneOf".into(), titled(options));
            }
            Self::Many {
                options,
                min,
                max,
                titled: t,
            } => {
                p.insert("type".into(), json!("array"));
                let items = if *t {
                    json!({ "anyOf": titled(options) })
                } else {
                    json!({ "type": "string", "enum": options })
                };
                p.insert("items".into(), items);
                bounds(&mut p, "minItems", "maxItems", *min, *max);
            }
        }
        Value::Object(p)
    }

    /// The reference rule: whether `v` is a valid answer for this property.
    fn accepts(&self, v: &Value) -> bool {
        let within = |n: u64, min: &Option<u64>, max: &Option<u64>| {
            min.is_none_or(|m| n >= m) && max.is_none_or(|m| n <= m)
        };
        match self {
            Self::Text { min, max } => v
                .as_str()
                .is_some_and(|s| within(s.chars().count() as u64, min, max)),
            Self::Number { integer, min, max } => {
                let Some(f) = v.as_f64() else { return false };
                (!*integer || f.fract() == 0.0)
                    && min.is_none_or(|m| f >= m as f64)
                    && max.is_none_or(|m| f <= m as f64)
            }
            Self::Flag => v.is_boolean(),
            Self::One { options, .. } => v.as_str().is_some_and(|s| options.iter().any(|o| o == s)),
            Self::Many {
                options, min, max, ..
            } => {
                let Some(items) = v.as_array() else {
                    return false;
                };
                let mut seen = BTreeSet::new();
                items.iter().all(|i| {
                    i.as_str()
                        .is_some_and(|s| options.iter().any(|o| o == s) && seen.insert(s))
                }) && within(items.len() as u64, min, max)
            }
        }
    }
}

fn ordered(a: Option<u64>, b: Option<u64>) -> (Option<u64>, Option<u64>) {
    match (a, b) {
        (Some(x), Some(y)) if x > y => (Some(y), Some(x)),
        other => other,
    }
}

fn options() -> impl Strategy<Value = Vec<String>> {
    prop::collection::btree_set("[a-z]{1,6}", 1..5).prop_map(|s| s.into_iter().collect())
}

fn prop_strategy() -> impl Strategy<Value = Prop> {
    prop_oneof![
        (prop::option::of(0u64..6), prop::option::of(0u64..12)).prop_map(|(a, b)| {
            let (min, max) = ordered(a, b);
            Prop::Text { min, max }
        }),
        (
            any::<bool>(),
            prop::option::of(-50i64..50),
            prop::option::of(-50i64..50)
        )
            .prop_map(|(integer, a, b)| {
                let (min, max) = match (a, b) {
                    (Some(x), Some(y)) if x > y => (Some(y), Some(x)),
                    other => other,
                };
                Prop::Number { integer, min, max }
            }),
        Just(Prop::Flag),
        (options(), any::<bool>()).prop_map(|(options, titled)| Prop::One { options, titled }),
        (
            options(),
            prop::option::of(0u64..3),
            prop::option::of(0u64..5),
            any::<bool>()
        )
            .prop_map(|(options, a, b, titled)| {
                // A schema may not ask for more selections than it offers.
                let (min, max) = ordered(a.map(|m| m.min(options.len() as u64)), b);
                Prop::Many {
                    options,
                    min,
                    max,
                    titled,
                }
            }),
    ]
}

/// Values of every JSON kind, biased toward what the properties above accept.
fn value_strategy() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (-60i64..60).prop_map(|n| json!(n)),
        (-60.0f64..60.0).prop_map(|f| json!(f)),
        "[a-z]{0,13}".prop_map(Value::String),
        prop::collection::vec("[a-z]{1,6}", 0..6).prop_map(|v| json!(v)),
        prop::collection::vec(any::<i8>(), 0..3).prop_map(|v| json!(v)),
    ]
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn answers_are_judged_as_the_reference_model_judges_them(
        props in prop::collection::btree_map("[a-z]{1,8}", prop_strategy(), 1..6),
        required in prop::collection::vec(any::<bool>(), 6),
        answer in prop::collection::btree_map("[a-z]{1,8}", value_strategy(), 0..7),
        reuse in prop::collection::vec((any::<prop::sample::Index>(), value_strategy()), 0..5),
    ) {
        let names: Vec<&String> = props.keys().collect();
        let required: Vec<&String> = names
            .iter()
            .zip(&required)
            .filter(|(_, r)| **r)
            .map(|(n, _)| *n)
            .collect();
        let mut schema = json!({
            "type": "object",
            "properties": props.iter().map(|(k, p)| (k.clone(), p.to_json())).collect::<Map<_, _>>(),
        });
        if !required.is_empty() {
            schema["required"] = json!(required);
        }
        // Every generated schema is inside the subset.
        prop_assert_eq!(validate_schema(&schema), Ok(()), "{}", schema);
        // Answers mostly name the schema's own properties, sometimes others.
        let mut content: BTreeMap<String, Value> = answer;
        for (i, v) in reuse {
            content.insert(i.get(&names).to_string(), v);
        }
        let mut faulty = BTreeSet::new();
        for (k, v) in &content {
            match props.get(k) {
                Some(p) if p.accepts(v) => {}
                _ => {
                    faulty.insert(format!("/content/{k}"));
                }
            }
        }
        for r in &required {
            if !content.contains_key(r.as_str()) {
                faulty.insert(format!("/content/{r}"));
            }
        }
        let content = json!(content);
        let judged = validate_content(&schema, &content);
        match judged {
            Ok(()) => prop_assert!(faulty.is_empty(), "accepted {} for {}; the model faults {:?}", content, schema, faulty),
            Err(errors) => {
                // One entry per offending field; an array item's fault is at its index below it.
                let fields: BTreeSet<String> = errors
                    .iter()
                    .map(|e| {
                        let parts: Vec<&str> = e.pointer.splitn(4, '/').collect();
                        parts[..3.min(parts.len())].join("/")
                    })
                    .collect();
                prop_assert_eq!(fields.len(), errors.len(), "{:?}", errors);
                prop_assert_eq!(&fields, &faulty, "for {} in {}", content, schema);
            }
        }
    }

    #[test]
    fn a_schema_with_its_bounds_crossed_is_refused(
        lo in 1u64..20, gap in 1u64..20, kind in 0usize..3,
    ) {
        let (low, high) = match kind {
            0 => ("minLength", "maxLength"),
            1 => ("minItems", "maxItems"),
            _ => ("minimum", "maximum"),
        };
        let mut p = match kind {
            0 => json!({ "type": "string" }),
            1 => json!({ "type": "array", "items": { "type": "string", "enum": ["a", "b"] } }),
            _ => json!({ "type": "integer" }),
        };
        p[low] = json!(lo + gap);
        p[high] = json!(lo);
        let schema = json!({ "type": "object", "properties": { "x": p } });
        let refused = validate_schema(&schema);
        prop_assert!(refused.is_err(), "{}", schema);
        prop_assert!(refused.unwrap_err().iter().all(|e| e.pointer.starts_with("/requestedSchema/properties/x")));
    }
}

// ---------------------------------------------------------------------------------------------
// Random requests into every route
// ---------------------------------------------------------------------------------------------

const SECRET: &str = "property-secret";
const ADMIN: &str = "property-admin";
const T0: u64 = 1_800_000_000_000;

fn secrets() -> api::Secrets {
    api::Secrets {
        limits: Limits::default(),
        token_secret: SECRET.into(),
        admin_token: ADMIN.into(),
        realm: Realm {
            issuer: "lighthouse".into(),
            audience: "lighthouse-elicitation".into(),
        },
    }
}

fn token_of(agent: &str) -> String {
    token::mint(
        SECRET.as_bytes(),
        &secrets().realm,
        agent,
        Timestamp(T0 - 1000),
        Timestamp(T0 + 3_600_000),
    )
}

/// A store, a clock every look at moves on by a second (so no wait can wait forever), ids.
struct World {
    store: MemoryStore,
    now: Cell<u64>,
    ids: Cell<u32>,
}

impl World {
    fn new() -> Self {
        Self {
            store: MemoryStore::new(),
            now: Cell::new(T0),
            ids: Cell::new(0),
        }
    }

    fn tick(&self) -> Timestamp {
        self.now.set(self.now.get() + 1000);
        Timestamp(self.now.get())
    }

    /// Every key and value, counters at zero left out (an increment given back leaves one).
    fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        self.store
            .keys()
            .into_iter()
            .filter_map(|k| {
                let v = block_on(self.store.get(&k)).unwrap()?;
                (v != [0u8; 8]).then_some((k, v))
            })
            .collect()
    }
}

impl Changes for World {
    fn until_changed(&self, _: Vec<String>, _: i64, ms: u64) -> impl Future<Output = ()> {
        self.now.set(self.now.get() + ms.max(1));
        std::future::ready(())
    }
}

impl Env for World {
    type Store = MemoryStore;
    fn store(&self) -> &MemoryStore {
        &self.store
    }
    fn now(&self) -> Timestamp {
        self.tick()
    }
    fn new_id(&self) -> String {
        self.ids.set(self.ids.get() + 1);
        format!("el_{:05}", self.ids.get())
    }
    fn sleep(&self, ms: u64) -> impl Future<Output = ()> {
        self.now.set(self.now.get() + ms);
        std::future::ready(())
    }
}

fn block_on<F: Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

/// JSON made of the words the routes look for, and of anything else.
fn json_strategy() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e6f64..1e6).prop_map(|f| json!(f)),
        prop_oneof![
            Just("bob".to_string()),
            Just("accept".to_string()),
            Just("decline".to_string()),
            Just("form".to_string()),
            Just("url".to_string()),
            Just("https://example.com/x".to_string()),
            Just("http://127.attacker.example/".to_string()),
            Just("string".to_string()),
            Just("object".to_string()),
            ".{0,12}",
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        let key = prop_oneof![
            Just("to".to_string()),
            Just("message".to_string()),
            Just("requestedSchema".to_string()),
            Just("ttlSeconds".to_string()),
            Just("mode".to_string()),
            Just("url".to_string()),
            Just("context".to_string()),
            Just("action".to_string()),
            Just("content".to_string()),
            Just("agent".to_string()),
            Just("ttlSeconds".to_string()),
            Just("type".to_string()),
            Just("properties".to_string()),
            Just("required".to_string()),
            Just("jsonrpc".to_string()),
            Just("id".to_string()),
            Just("method".to_string()),
            Just("params".to_string()),
            Just("name".to_string()),
            Just("arguments".to_string()),
            "[a-zA-Z_/]{1,8}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A body: generated JSON (sometimes a valid-looking create), or bytes that are not JSON.
fn body_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => json_strategy().prop_map(|v| v.to_string().into_bytes()),
        1 => json_strategy().prop_map(|v| {
            let mut base = json!({ "to": "bob", "message": "ok?" });
            if let Value::Object(m) = v {
                for (k, x) in m {
                    base[k] = x;
                }
            }
            base.to_string().into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn authorization_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        4 => Just(Some(format!("Bearer {}", token_of("alice")))),
        4 => Just(Some(format!("Bearer {}", token_of("bob")))),
        2 => Just(Some(format!("Bearer {ADMIN}"))),
        1 => Just(Some("Bearer".to_string())),
        1 => Just(Some(format!("Basic {}", token_of("alice")))),
        1 => ".{0,40}".prop_map(Some),
    ]
}

fn content_type_strategy() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        6 => Just(Some("application/json".to_string())),
        1 => Just(Some("application/json; charset=utf-8".to_string())),
        1 => Just(Some("application/problem+json".to_string())),
        1 => Just(Some("text/plain".to_string())),
        1 => ".{0,20}".prop_map(Some),
    ]
}

fn query_strategy() -> impl Strategy<Value = String> {
    let pair = (
        prop_oneof![
            Just("wait"),
            Just("role"),
            Just("status"),
            Just("limit"),
            Just("cursor"),
            Just("after"),
            Just("since"),
            Just("timeout"),
            Just("ticket"),
            Just("x"),
        ],
        prop_oneof![
            Just("0".to_string()),
            Just("3".to_string()),
            Just("-1".to_string()),
            Just("99999999999999999999".to_string()),
            Just("inbox".to_string()),
            Just("outbox".to_string()),
            Just("pending,answered".to_string()),
            "[a-z0-9%,]{0,6}",
        ],
    )
        .prop_map(|(k, v)| format!("{k}={v}"));
    prop::collection::vec(pair, 0..4).prop_map(|p| p.join("&"))
}

/// Which route, with its `:params` (ids both existing and not) and the method it takes.
fn route_strategy() -> impl Strategy<Value = (&'static str, BTreeMap<String, String>, &'static str)>
{
    routes().prop_map(|(route, params)| {
        let method = match route {
            "/v1/tokens" | "/v1/tokens/revoke" | "/v1/elicitations" | "/mcp" => "POST",
            r if r.ends_with("/response") || r.ends_with("/withdraw") => "POST",
            _ => "GET",
        };
        (route, params, method)
    })
}

fn routes() -> impl Strategy<Value = (&'static str, BTreeMap<String, String>)> {
    let id = prop_oneof![
        Just("el_00001".to_string()),
        Just("el_nope".to_string()),
        ".{0,8}"
    ];
    let agent = prop_oneof![Just("alice".to_string()), Just("bob".to_string()), ".{0,8}"];
    prop_oneof![
        Just(("/v1/tokens", BTreeMap::new())),
        Just(("/v1/tokens/revoke", BTreeMap::new())),
        Just(("/v1/elicitations", BTreeMap::new())),
        id.clone().prop_map(|id| (
            "/v1/elicitations/:id/response",
            BTreeMap::from([("id".into(), id)])
        )),
        id.clone().prop_map(|id| (
            "/v1/elicitations/:id/withdraw",
            BTreeMap::from([("id".into(), id)])
        )),
        id.clone()
            .prop_map(|id| ("/v1/elicitations/:id", BTreeMap::from([("id".into(), id)]))),
        id.prop_map(|id| (
            "/v1/elicitations/:id/history",
            BTreeMap::from([("id".into(), id)])
        )),
        agent.clone().prop_map(|a| (
            "/v1/agents/:agent/elicitations",
            BTreeMap::from([("agent".into(), a)])
        )),
        agent.clone().prop_map(|a| (
            "/v1/agents/:agent/messages",
            BTreeMap::from([("agent".into(), a)])
        )),
        agent.prop_map(|a| (
            "/v1/agents/:agent/events",
            BTreeMap::from([("agent".into(), a)])
        )),
        Just(("/mcp", BTreeMap::new())),
    ]
}

/// Serves `req` as the component of its route would.
fn serve(world: &World, req: &Request) -> Option<Response> {
    let s = secrets();
    let store = &world.store;
    let route = req.route.as_str();
    let sleep = |ms: u64| {
        world.now.set(world.now.get() + ms);
        std::future::ready(())
    };
    Some(match route {
        "/v1/tokens" => api::tokens(req, &s, world.tick()),
        "/v1/tokens/revoke" => block_on(api::revoke(store, req, &s, world.tick())),
        "/v1/elicitations" => block_on(api::create(store, req, &s, world.tick(), world.new_id())),
        "/v1/elicitations/:id/response" | "/v1/elicitations/:id/withdraw" => {
            block_on(api::respond_route(store, req, &s, world.tick()))
        }
        "/v1/agents/:agent/events" => {
            match block_on(api::open_stream(store, req, &s, world.tick())) {
                Ok(_) => Response::json(200, &json!({})),
                Err(r) => r,
            }
        }
        "/mcp" => {
            let settings = mcp::Settings {
                secrets: s,
                allowed_origins: vec![],
                session_ttl_seconds: 3600,
                read: api::ReadOptions::default(),
            };
            match block_on(mcp::handle(world, req, &settings)) {
                mcp::Reply::Done(r) => r,
                mcp::Reply::Stream(_) => return None,
            }
        }
        _ => block_on(api::read(
            store,
            req,
            &s,
            &api::ReadOptions::default(),
            || world.tick(),
            sleep,
            |_: Vec<String>, _: i64, ms: u64| {
                world.now.set(world.now.get() + ms.max(1));
                std::future::ready(())
            },
        )),
    })
}

/// A world where alice asked bob one question (`el_00001`).
fn seeded() -> World {
    let world = World::new();
    let req = Request {
        method: "POST".into(),
        route: "/v1/elicitations".into(),
        authorization: Some(format!("Bearer {}", token_of("alice"))),
        content_type: Some("application/json".into()),
        body: json!({ "to": "bob", "message": "ok?",
                      "requestedSchema": { "type": "object", "properties": { "ok": { "type": "boolean" } } } })
            .to_string()
            .into_bytes(),
        ..Request::default()
    };
    let created = serve(&world, &req).unwrap();
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    world
}

proptest! {
    #![proptest_config(config(1500))]

    #[test]
    fn no_route_panics_or_fails_on_any_input_and_a_refusal_changes_nothing(
        (route, params, method) in route_strategy(),
        other_method in prop::option::weighted(0.15, prop_oneof![
            Just("GET".to_string()),
            Just("POST".to_string()),
            Just("DELETE".to_string()),
            "[A-Z]{0,6}",
        ]),
        query in query_strategy(),
        authorization in authorization_strategy(),
        content_type in content_type_strategy(),
        idempotency_key in prop::option::of(".{0,300}"),
        last_event_id in prop::option::of("[0-9a-z-]{0,6}"),
        session in prop::option::of(prop_oneof![Just("mcp_nope".to_string()), ".{0,10}"]),
        version in prop::option::of(prop_oneof![Just("2025-11-25"), Just("2026-07-28"), Just("1999-01-01")]),
        body in body_strategy(),
    ) {
        let world = seeded();
        let mut headers = Vec::new();
        if let Some(s) = session {
            headers.push(("mcp-session-id".to_string(), s));
        }
        if let Some(v) = version {
            headers.push(("mcp-protocol-version".to_string(), v.to_string()));
        }
        let req = Request {
            method: other_method.unwrap_or_else(|| method.to_string()),
            route: route.to_string(),
            params,
            query,
            authorization,
            content_type,
            idempotency_key,
            last_event_id,
            headers,
            body,
        };
        let before = world.snapshot();
        let Some(resp) = serve(&world, &req) else { return Ok(()) };
        prop_assert!(
            (200..300).contains(&resp.status) || (400..500).contains(&resp.status),
            "{} {} -> {} {}", req.method, req.route, resp.status, String::from_utf8_lossy(&resp.body)
        );
        if resp.status >= 400 {
            let ct = resp.headers.iter().find(|(n, _)| n == "content-type").map(|(_, v)| v.as_str());
            prop_assert_eq!(ct, Some("application/problem+json"));
            let problem: Value = serde_json::from_slice(&resp.body).expect("a problem document");
            prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(resp.status)));
            prop_assert!(problem["type"].as_str().is_some_and(|t| t.starts_with("/problems/")));
            prop_assert_eq!(&world.snapshot(), &before, "{} {} -> {} changed the store", req.method, req.route, resp.status);
        }
    }
}
