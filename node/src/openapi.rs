//! The OpenAPI 3 description of the public JSON API, served at
//! `GET /api/v1/openapi.json` (DESIGN §9).
//!
//! Written by hand next to the handlers it describes rather than generated,
//! to keep the dependency set small; the integration tests check that every
//! documented path exists. The cluster-internal bincode endpoints under
//! `/raft/` are deliberately not part of it.

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    })
}

/// The document.
pub fn document() -> Value {
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Cairn node API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Errors are JSON objects with a stable `code` (match on it) and a human `message`."
        },
        "components": {
            "securitySchemes": {"adminToken": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key", "in": "header", "required": false,
                    "description": "32 hex digits chosen by the client; a retry with the same key is applied at most once.",
                    "schema": {"type": "string", "pattern": "^[0-9a-f]{32}$"}
                }
            },
            "schemas": {
                "Error": {"type": "object", "required": ["code", "message"], "properties": {
                    "code": {"type": "string"}, "message": {"type": "string"}}},
                "Kdf": {"type": "object", "required": ["memory_kib", "iterations", "parallelism", "salt"], "properties": {
                    "memory_kib": {"type": "integer"}, "iterations": {"type": "integer"},
                    "parallelism": {"type": "integer"}, "salt": {"type": "string", "description": "hex, at least 16 bytes"}}},
                "CreateUser": {"type": "object", "required": ["name", "kdf", "login_key"], "properties": {
                    "name": {"type": "string"}, "kdf": {"$ref": "#/components/schemas/Kdf"},
                    "login_key": {"type": "string", "description": "hex, 32 bytes: the first half of argon2id(password, salt)"}}},
                "UserInfo": {"type": "object", "properties": {
                    "id": {"type": "string"}, "name": {"type": "string"}, "created_at": {"type": "integer"},
                    "devices": {"type": "integer"}, "vaults": {"type": "integer"}}},
                "DefineTier": {"type": "object", "required": ["name", "replicas"], "properties": {
                    "name": {"type": "string"}, "replicas": {"type": "integer", "minimum": 1, "maximum": 16},
                    "requestable": {"type": "boolean", "default": true}}},
                "TierInfo": {"type": "object", "properties": {
                    "name": {"type": "string"}, "replicas": {"type": "integer"},
                    "requestable": {"type": "boolean"}, "defined_at": {"type": "integer"}}},
                "RemoveRequest": {"type": "object", "required": ["node_id"], "properties": {
                    "node_id": {"type": "integer"}}},
                "RemoveResponse": {"type": "object", "properties": {
                    "node_id": {"type": "integer"}, "leader": {"type": "integer", "nullable": true},
                    "voters": {"type": "array", "items": {"type": "integer"}},
                    "learners": {"type": "array", "items": {"type": "integer"}}}},
                "JoinRequest": {"type": "object", "required": ["node_id", "addr"], "properties": {
                    "node_id": {"type": "integer"}, "addr": {"type": "string"}}},
                "JoinResponse": {"type": "object", "properties": {
                    "voter": {"type": "boolean"}, "leader": {"type": "integer"}}},
                "Member": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "addr": {"type": "string"}, "voter": {"type": "boolean"},
                    "matched_index": {"type": "integer", "nullable": true},
                    "applied_index": {"type": "integer", "nullable": true}}},
                "StorageNodeInfo": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "addr": {"type": "string"}, "status": {"type": "string"}}},
                "ClusterStatus": {"type": "object", "properties": {
                    "node_id": {"type": "integer"}, "role": {"type": "string"},
                    "leader": {"type": "integer", "nullable": true}, "leader_addr": {"type": "string", "nullable": true},
                    "term": {"type": "integer"}, "last_applied": {"type": "integer", "nullable": true},
                    "last_log_index": {"type": "integer", "nullable": true},
                    "snapshot_index": {"type": "integer", "nullable": true},
                    "purged_index": {"type": "integer", "nullable": true},
                    "members": {"type": "array", "items": {"$ref": "#/components/schemas/Member"}},
                    "voters": {"type": "array", "items": {"type": "integer"}},
                    "storage_nodes": {"type": "array", "items": {"$ref": "#/components/schemas/StorageNodeInfo"}},
                    "under_replicated_chunks": {"type": "integer", "nullable": true}}}
            }
        },
        "paths": {
            "/api/v1/cluster/status": {"get": {
                "summary": "This node's view of the cluster",
                "responses": {"200": {"description": "status", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ClusterStatus"}}}}}}},
            "/api/v1/cluster/join": {"post": {
                "summary": "Add a node (learner, then voter while there are fewer than 5)",
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/JoinRequest"}}}},
                "responses": {
                    "200": {"description": "joined", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/JoinResponse"}}}},
                    "503": error_response("no leader or another membership change in progress; retry")}}},
            "/api/v1/cluster/remove": {"post": {
                "summary": "Remove a node from the cluster (membership change through the leader)",
                "security": [{"adminToken": []}],
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RemoveRequest"}}}},
                "responses": {
                    "200": {"description": "removed (or already removed)", "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/RemoveResponse"}}}},
                    "400": error_response("the node is the last voter"),
                    "401": error_response("missing or wrong admin token"),
                    "404": error_response("not_found: the cluster never had this node"),
                    "503": error_response("no leader or another membership change in progress; retry")}}},
            "/api/v1/admin/users": {
                "get": {
                    "summary": "List accounts (linearizable)",
                    "security": [{"adminToken": []}],
                    "responses": {
                        "200": {"description": "accounts", "content": {"application/json": {"schema": {
                            "type": "array", "items": {"$ref": "#/components/schemas/UserInfo"}}}}},
                        "401": error_response("missing or wrong admin token")}},
                "post": {
                    "summary": "Create an account",
                    "security": [{"adminToken": []}],
                    "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                    "requestBody": {"required": true, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/CreateUser"}}}},
                    "responses": {
                        "201": {"description": "created", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/UserInfo"}}}},
                        "400": error_response("malformed request"),
                        "401": error_response("missing or wrong admin token"),
                        "409": error_response("name_taken"),
                        "422": error_response("invalid_name"),
                        "503": error_response("no leader; retry with the same Idempotency-Key")}}},
            "/api/v1/admin/tiers": {
                "get": {
                    "summary": "List vault tiers (linearizable)",
                    "security": [{"adminToken": []}],
                    "responses": {
                        "200": {"description": "tiers", "content": {"application/json": {"schema": {
                            "type": "array", "items": {"$ref": "#/components/schemas/TierInfo"}}}}},
                        "401": error_response("missing or wrong admin token")}},
                "post": {
                    "summary": "Define or redefine a vault tier",
                    "security": [{"adminToken": []}],
                    "parameters": [{"$ref": "#/components/parameters/IdempotencyKey"}],
                    "requestBody": {"required": true, "content": {"application/json": {
                        "schema": {"$ref": "#/components/schemas/DefineTier"}}}},
                    "responses": {
                        "201": {"description": "defined", "content": {"application/json": {
                            "schema": {"$ref": "#/components/schemas/TierInfo"}}}},
                        "401": error_response("missing or wrong admin token"),
                        "422": error_response("invalid_replicas or invalid_name")}}},
            "/api/v1/openapi.json": {"get": {
                "summary": "This document",
                "responses": {"200": {"description": "OpenAPI 3 document"}}}},
            "/healthz": {"get": {"summary": "Liveness: Raft is running",
                "responses": {"200": {"description": "ok"}, "503": {"description": "raft stopped"}}}},
            "/readyz": {"get": {"summary": "Readiness: a leader is known, this node is a member and within 100 entries of the leader's commit index",
                "responses": {"200": {"description": "ready"}, "503": {"description": "not ready"}}}},
            "/metrics": {"get": {"summary": "Prometheus text exposition",
                "responses": {"200": {"description": "metrics"}}}}
        }
    })
}
