//! `docs/openapi.json` describes exactly the routes `spin.toml` serves, with exactly the methods
//! the components accept.

use std::collections::{BTreeMap, BTreeSet};

use e2e::{repo, shared};
use serde_json::Value;

fn manifest_routes() -> BTreeSet<String> {
    let text = std::fs::read_to_string(repo().join("spin.toml")).unwrap();
    let manifest: toml::Value = toml::from_str(&text).unwrap();
    manifest["trigger"]["http"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["route"].as_str())
        .map(|r| {
            r.split('/')
                .map(|s| {
                    s.strip_prefix(':')
                        .map_or(s.to_string(), |p| format!("{{{p}}}"))
                })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect()
}

fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("docs/openapi.json")).unwrap())
            .unwrap();
    assert_eq!(
        doc["openapi"].as_str().map(|v| v.starts_with("3.1")),
        Some(true)
    );
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(p, _)| !p.starts_with("/.well-known"))
        .map(|(p, item)| {
            let methods = item
                .as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(|k| k.to_uppercase())
                .collect();
            (p.clone(), methods)
        })
        .collect()
}

#[test]
fn the_openapi_document_lists_exactly_the_manifest_routes() {
    let doc = documented();
    assert_eq!(
        doc.keys().cloned().collect::<BTreeSet<_>>(),
        manifest_routes()
    );
}

#[test]
fn every_route_accepts_exactly_its_documented_methods() {
    let c = shared().client();
    for (path, methods) in documented() {
        let concrete = path.replace("{id}", "el_x").replace("{agent}", "someone");
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let r = c.send(method, &concrete, None, None, &[]);
            if methods.contains(method) {
                // Documented: the route takes it (and asks for a token).
                assert_eq!(r.status, 401, "{method} {path}: {}", r.text);
            } else {
                r.expect_problem(405);
                let allow: BTreeSet<String> = r
                    .header("allow")
                    .unwrap_or("")
                    .split(", ")
                    .map(str::to_string)
                    .collect();
                assert_eq!(&allow, &methods, "{method} {path}");
            }
        }
    }
}
