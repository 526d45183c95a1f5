//! The client builds every request path from `cairn_proto::route`; this
//! checks each of those templates, with its method, against the OpenAPI
//! document the node generates from the handlers it mounts. A route renamed
//! on one side only fails here, not in the field.

use cairn_proto::api::PREFIX;
use cairn_proto::route;

#[test]
fn every_route_the_client_calls_is_mounted_with_its_method() {
    let doc = serde_json::to_value(cairn_node::http::document()).expect("openapi as json");
    let paths = doc["paths"].as_object().expect("paths");
    let mut missing = Vec::new();
    for (method, template) in route::ALL {
        let full = format!("{PREFIX}{template}");
        let mounted = paths
            .get(&full)
            .and_then(|ops| ops.get(method.to_ascii_lowercase()))
            .is_some();
        if !mounted {
            missing.push(format!("{method} {full}"));
        }
    }
    assert!(
        missing.is_empty(),
        "routes the client calls but the node does not document: {missing:?}"
    );
}

#[test]
fn the_check_can_fail() {
    // A made-up route is not found, so the test above is not vacuous.
    let doc = serde_json::to_value(cairn_node::http::document()).expect("openapi as json");
    assert!(doc["paths"]
        .get(format!("{PREFIX}/no/such/route"))
        .is_none());
    assert!(
        route::ALL.len() >= 20,
        "the table lists the client's routes"
    );
    assert!(doc["paths"]
        .get(format!("{PREFIX}{}", route::LOGIN))
        .and_then(|ops| ops.get("get"))
        .is_none());
}
