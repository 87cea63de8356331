//! The README tells the truth where it can be checked mechanically: its configuration
//! reference is exactly what `gatehouse config --defaults` prints, and every file it
//! quotes (`<!-- include: PATH -->` … `<!-- end include -->`) is quoted as it is.

use crate::process::gatehouse;

const README: &str = include_str!("../../README.md");
const REPO: &str = env!("CARGO_MANIFEST_DIR");

const BEGIN_REFERENCE: &str = "<!-- BEGIN configuration reference: `gatehouse config --defaults`; scripts/config-reference.sh rewrites it -->\n";
const END_REFERENCE: &str = "<!-- END configuration reference -->";

#[test]
fn the_readme_configuration_reference_is_the_generated_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = gatehouse(dir.path())
        .args(["config", "--defaults"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let generated = format!("```toml\n{}```\n", String::from_utf8(out.stdout).unwrap());
    let start = README
        .find(BEGIN_REFERENCE)
        .expect("README.md has the configuration reference markers")
        + BEGIN_REFERENCE.len();
    let end = start + README[start..].find(END_REFERENCE).unwrap();
    assert!(
        README[start..end] == generated,
        "README.md's configuration reference differs from `gatehouse config --defaults`: \
         run scripts/config-reference.sh (and give any new setting a doc comment)"
    );
}

#[test]
fn every_file_the_readme_quotes_is_quoted_as_it_is() {
    let mut quoted: Vec<&str> = Vec::new();
    for (i, _) in README.match_indices("<!-- include: ") {
        let rest = &README[i + "<!-- include: ".len()..];
        let path = &rest[..rest.find(" -->").unwrap()];
        let body = &rest[rest.find("-->\n").unwrap() + 4..];
        let body = &body[..body.find("<!-- end include -->").unwrap()];
        let text = std::fs::read_to_string(format!("{REPO}/{path}"))
            .unwrap_or_else(|e| panic!("README.md quotes {path}: {e}"));
        let fence_end = body.find('\n').unwrap() + 1;
        let inner = &body[fence_end..body.len() - "```\n".len()];
        assert_eq!(
            inner, text,
            "README.md's copy of {path} differs from the file"
        );
        quoted.push(path);
    }
    for path in [
        "docs/verify-token/jwt-simple.cjs",
        "docs/verify-token/jose.mjs",
        "docs/verify-token/pyjwt.py",
        "docs/verify-token/rust/src/main.rs",
        "docs/nginx/gatehouse.conf",
    ] {
        assert!(quoted.contains(&path), "README.md no longer quotes {path}");
    }
}

/// The OpenAPI document declares what the middleware answers, not only the handlers:
/// `408` everywhere, `429` wherever the per-address limit counts, each in the wire
/// format of its surface; and it holds the OwnID routes only when they are served.
#[tokio::test]
async fn openapi_declares_the_timeout_and_the_rate_limit_where_they_apply() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let (status, doc) = crate::helpers::read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    assert!(
        !paths.keys().any(|p| p.starts_with("/ownid")),
        "no OwnID secret, no OwnID routes: {:?}",
        paths.keys()
    );
    assert!(
        doc["info"]["description"]
            .as_str()
            .unwrap()
            .contains("only when `ownid.shared_secrets` is set")
    );
    let mut selfkey_routes = 0;
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            let responses = &operation["responses"];
            let schema = |code: &str| {
                responses[code]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .map(str::to_owned)
            };
            assert_eq!(
                schema("408").as_deref(),
                Some("#/components/schemas/ErrorBody"),
                "{method} {path}"
            );
            let coded = path.starts_with("/api/v1/selfkey") || path.starts_with("/auth/siwe");
            let limited = coded
                || path.starts_with("/auth/passkeys")
                || path.starts_with("/auth/password")
                || path == "/auth/register"
                || path == "/auth/login"
                || (path == "/auth/me" && method == "delete")
                || (path.starts_with("/auth/mfa") && method != "get")
                || (path.starts_with("/ui/") && method == "post");
            assert_eq!(responses.get("429").is_some(), limited, "{method} {path}");
            if coded {
                selfkey_routes += 1;
                assert_eq!(
                    schema("429").as_deref(),
                    Some("#/components/schemas/SelfKeyErrorBody"),
                    "{method} {path}"
                );
            }
        }
    }
    assert!(selfkey_routes >= 10, "{selfkey_routes}");
}

/// The hosted pages are in the document: every route the pages serve, forms as
/// objects (a fuzzer builds a form from them), pages as `text/html`, and the
/// redirects and refusals they answer.
#[tokio::test]
async fn openapi_describes_the_hosted_pages() {
    let app = crate::helpers::TestApp::spawn(crate::helpers::Backend::Sqlite).await;
    let (status, doc) = crate::helpers::read(app.get("/openapi.json", None).await).await;
    assert_eq!(status, reqwest::StatusCode::OK);
    let paths = doc["paths"].as_object().unwrap();
    let ui: Vec<&String> = paths.keys().filter(|p| p.starts_with("/ui/")).collect();
    assert_eq!(ui.len(), 42, "{ui:?}");
    let sign_in = &paths["/ui/sign-in"];
    let form =
        &sign_in["post"]["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"];
    assert_eq!(form["type"], "object", "{form}");
    for field in ["csrf", "email", "password", "return_to"] {
        assert_eq!(
            form["properties"][field]["type"], "string",
            "{field}: {form}"
        );
    }
    for code in ["200", "303", "400", "401", "403", "429"] {
        assert!(
            sign_in["post"]["responses"][code].is_object(),
            "{code}: {sign_in}"
        );
    }
    assert!(sign_in["get"]["responses"]["200"]["content"]["text/html"].is_object());
    assert_eq!(sign_in["get"]["parameters"][0]["name"], "return_to");
    let style = &paths["/ui/assets/style.css"]["get"]["responses"]["200"]["content"];
    assert!(style["text/css"].is_object(), "{style}");
    // Every page the server serves is documented: each answers something but 404/405.
    for path in &ui {
        for method in paths[*path].as_object().unwrap().keys() {
            let res = match method.as_str() {
                "get" => app.client.get(app.url(path)).send().await.unwrap(),
                _ => app.client.post(app.url(path)).send().await.unwrap(),
            };
            let status = res.status().as_u16();
            assert_ne!(status, 405, "{method} {path}");
            assert!(
                paths[*path][method]["responses"][status.to_string()].is_object(),
                "{method} {path} answers {status}, undocumented"
            );
        }
    }
}
