//! The typed request the HTTP layer hands to the core, and the typed response it gets back.
//! The core never sees hyper; the server never decides anything.

/// The request methods IMDS distinguishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Method {
    Get,
    /// Answered like GET; the server sends no body.
    Head,
    Put,
    /// Anything else (`POST`, `DELETE`, ...): 405.
    Other(String),
}

impl Method {
    pub fn parse(s: &str) -> Method {
        match s {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "PUT" => Method::Put,
            other => Method::Other(other.to_string()),
        }
    }
}

/// One IMDS request, with only the headers IMDS looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsRequest {
    pub method: Method,
    /// The request target's path, still percent-encoded, query string allowed (it is ignored).
    pub path: String,
    /// `X-aws-ec2-metadata-token`
    pub token: Option<String>,
    /// `X-aws-ec2-metadata-token-ttl-seconds`
    pub token_ttl_seconds: Option<String>,
    /// `X-Forwarded-For` (its value does not matter, only that it is there).
    pub forwarded_for: Option<String>,
}

impl ImdsRequest {
    /// A bare request (tests, fuzzing).
    pub fn new(method: Method, path: impl Into<String>) -> Self {
        ImdsRequest { method, path: path.into(), token: None, token_ttl_seconds: None, forwarded_for: None }
    }

    pub fn get(path: impl Into<String>) -> Self {
        ImdsRequest::new(Method::Get, path)
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn with_ttl(mut self, ttl: impl Into<String>) -> Self {
        self.token_ttl_seconds = Some(ttl.into());
        self
    }

    pub fn with_forwarded_for(mut self, value: impl Into<String>) -> Self {
        self.forwarded_for = Some(value.into());
        self
    }
}

/// The statuses IMDS answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Ok,
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The service could not complete the request (AWS: "retry the request later").
    ServiceUnavailable,
}

impl Status {
    pub fn code(self) -> u16 {
        match self {
            Status::Ok => 200,
            Status::BadRequest => 400,
            Status::Unauthorized => 401,
            Status::Forbidden => 403,
            Status::NotFound => 404,
            Status::MethodNotAllowed => 405,
            Status::ServiceUnavailable => 503,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::BadRequest => "Bad Request",
            Status::Unauthorized => "Unauthorized",
            Status::Forbidden => "Forbidden",
            Status::NotFound => "Not Found",
            Status::MethodNotAllowed => "Method Not Allowed",
            Status::ServiceUnavailable => "Service Unavailable",
        }
    }
}

/// `Content-Type` of a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentType {
    /// Every metadata value and listing.
    Text,
    /// `user-data`: opaque bytes.
    OctetStream,
    /// Error pages.
    Html,
}

impl ContentType {
    pub fn as_str(self) -> &'static str {
        match self {
            ContentType::Text => "text/plain",
            ContentType::OctetStream => "application/octet-stream",
            ContentType::Html => "text/html",
        }
    }
}

/// What the server must send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImdsResponse {
    pub status: Status,
    pub content_type: ContentType,
    pub body: Vec<u8>,
    /// `X-aws-ec2-metadata-token-ttl-seconds` on the response (the token PUT echoes the TTL).
    pub token_ttl_seconds: Option<u32>,
    /// The IP TTL the response must leave with (the token PUT: the instance's hop limit). The
    /// server closes the connection after such a response so that later responses on it are not
    /// limited too.
    pub ip_ttl: Option<u8>,
}

impl ImdsResponse {
    pub fn ok(content_type: ContentType, body: Vec<u8>) -> Self {
        ImdsResponse { status: Status::Ok, content_type, body, token_ttl_seconds: None, ip_ttl: None }
    }

    /// An error in IMDS's own page format (an XHTML page titled `404 - Not Found`, and so on).
    pub fn error(status: Status) -> Self {
        ImdsResponse {
            status,
            content_type: ContentType::Html,
            body: error_page(status).into_bytes(),
            token_ttl_seconds: None,
            ip_ttl: None,
        }
    }

    /// The body as text (tests).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// The body IMDS sends with every error status.
pub fn error_page(status: Status) -> String {
    let title = format!("{} - {}", status.code(), status.reason());
    format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
         \t\"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
         <head>\n  \
         <title>{title}</title>\n \
         </head>\n \
         <body>\n  \
         <h1>{title}</h1>\n \
         </body>\n\
         </html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_page_has_imds_shape() {
        let page = error_page(Status::NotFound);
        assert!(page.starts_with("<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n<!DOCTYPE html"), "{page}");
        assert!(page.contains("\n <head>\n  <title>404 - Not Found</title>\n </head>\n"), "{page}");
        assert!(page.contains("\n <body>\n  <h1>404 - Not Found</h1>\n </body>\n</html>\n"), "{page}");
    }
}
