//! `CsrfLayer` over HTTP: Fetch Metadata and `Origin` checks for unsafe
//! methods (a sibling subdomain is refused too), and signed double-submit
//! tokens bound to the session, in a header or an urlencoded form whose body
//! still reaches the handler; safe methods are never refused.

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode, header};
use keystile::csrf::{CsrfLayer, CsrfToken};
use keystile::keys::{Keyring, SigningKey};
use keystile::session::SessionCookie;
use tower::ServiceExt;

fn app(layer: CsrfLayer) -> Router {
    Router::new()
        .route(
            "/profile",
            get(|token: CsrfToken| async move { token.as_str().to_owned() })
                .post(|body: String| async move { format!("saved {body}") }),
        )
        .layer(layer)
}

fn keyring() -> Keyring {
    Keyring::new(SigningKey::from_bytes(&[5; 32]).unwrap())
}

async fn send(app: &Router, request: Request<Body>) -> (StatusCode, String, Option<String>) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = axum::body::to_bytes(response.into_body(), 1 << 16)
        .await
        .unwrap();
    (status, String::from_utf8_lossy(&body).into_owned(), cookie)
}

fn post(headers: &[(&str, &str)], body: &str) -> Request<Body> {
    let mut request = Request::post("/profile");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.body(Body::from(body.to_owned())).unwrap()
}

#[tokio::test]
async fn fetch_metadata_and_origin_refuse_other_sites_and_sibling_subdomains() {
    let app = app(CsrfLayer::new().trusted_origin("https://admin.example.test"));
    for (headers, expected, why) in [
        (vec![("sec-fetch-site", "same-origin")], 200, "same origin"),
        (vec![("sec-fetch-site", "none")], 200, "typed by the user"),
        (
            vec![
                ("sec-fetch-site", "cross-site"),
                ("origin", "https://evil.test"),
            ],
            403,
            "cross-site",
        ),
        (
            vec![
                ("sec-fetch-site", "same-site"),
                ("origin", "https://globex.example.test"),
            ],
            403,
            "a sibling tenant",
        ),
        (
            vec![
                ("sec-fetch-site", "same-site"),
                ("origin", "https://admin.example.test"),
            ],
            200,
            "trusted",
        ),
        (
            vec![
                ("host", "acme.example.test"),
                ("origin", "https://acme.example.test"),
            ],
            200,
            "own origin, no metadata",
        ),
        (
            vec![
                ("host", "acme.example.test"),
                ("origin", "https://globex.example.test"),
            ],
            403,
            "other origin, no metadata",
        ),
        (vec![], 200, "not a browser"),
    ] {
        let (status, body, _) = send(&app, post(&headers, "x=1")).await;
        assert_eq!(status.as_u16(), expected, "{why}: {body}");
    }
    // Safe methods are never refused, whatever their origin.
    let cross = Request::get("/profile")
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    let response = Router::new()
        .route("/profile", get(|| async { "page" }))
        .layer(CsrfLayer::new())
        .oneshot(cross)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn double_submit_tokens_are_bound_to_the_session() {
    let app = app(CsrfLayer::new().tokens(&keyring(), SessionCookie::http()));
    let session = "keystile_session=session-one";
    // A safe request of the session gets a token: in the cookie and for
    // templates.
    let get_page = |cookies: &str| {
        Request::get("/profile")
            .header(header::COOKIE, cookies)
            .body(Body::empty())
            .unwrap()
    };
    let (status, token, set_cookie) = send(&app, get_page(session)).await;
    assert_eq!(status, StatusCode::OK);
    let set_cookie = set_cookie.expect("a token cookie");
    assert!(
        set_cookie.starts_with(&format!("keystile_csrf={token}")),
        "{set_cookie}"
    );
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Strict"));
    let cookies = format!("{session}; keystile_csrf={token}");
    // The token cookie is kept while valid.
    let (_, again, set_again) = send(&app, get_page(&cookies)).await;
    assert_eq!((again.as_str(), set_again), (token.as_str(), None));

    // In a header.
    let (status, body, _) = send(
        &app,
        post(
            &[("cookie", &cookies), ("x-csrf-token", &token)],
            "name=alice",
        ),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "saved name=alice")
    );
    // In a form field: the handler still gets the whole body.
    let form = format!("name=alice&csrf_token={token}");
    let (status, body, _) = send(
        &app,
        post(
            &[
                ("cookie", &cookies),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            &form,
        ),
    )
    .await;
    assert_eq!((status, body), (StatusCode::OK, format!("saved {form}")));

    // Missing, wrong, or another session's token: 403, each named.
    let (status, body, _) = send(&app, post(&[("cookie", &cookies)], "name=alice")).await;
    assert_eq!(status, 403);
    assert!(body.contains("CSRF token missing"), "{body}");
    let (status, body, _) = send(
        &app,
        post(&[("cookie", &cookies), ("x-csrf-token", "forged")], ""),
    )
    .await;
    assert_eq!(status, 403);
    assert!(body.contains("mismatch"), "{body}");
    let (_, other_token, _) = send(&app, get_page("keystile_session=session-two")).await;
    let mixed = format!("keystile_session=session-two; keystile_csrf={token}");
    let (status, body, _) = send(
        &app,
        post(&[("cookie", &mixed), ("x-csrf-token", &token)], ""),
    )
    .await;
    assert_eq!(status, 403, "session one's token under session two");
    assert!(body.contains("not for this session"), "{body}");
    let other = format!("{session}; keystile_csrf={token}");
    let (status, _, _) = send(
        &app,
        post(&[("cookie", &other), ("x-csrf-token", &other_token)], ""),
    )
    .await;
    assert_eq!(
        status, 403,
        "session two's token presented with session one's cookie"
    );
    // A second CSRF cookie planted by a sibling: pages still load (with a
    // fresh token), unsafe requests are refused.
    let planted = format!("{cookies}; keystile_csrf=planted");
    let (status, _, fresh) = send(&app, get_page(&planted)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(fresh.is_some());
    let (status, _, _) = send(
        &app,
        post(&[("cookie", &planted), ("x-csrf-token", &token)], ""),
    )
    .await;
    assert_eq!(status, 403);
    // No session cookie: nothing to forge, nothing required.
    let (status, _, _) = send(&app, post(&[], "name=alice")).await;
    assert_eq!(status, StatusCode::OK);
}
