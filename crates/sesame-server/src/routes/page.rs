use axum::response::Html;

/// The sign-in page for browsers.
pub async fn login_page() -> Html<&'static str> {
    Html(include_str!("../../assets/login.html"))
}
