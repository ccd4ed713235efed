//! STS `GetCallerIdentity`, answered at the EC2 endpoint: the SDKs and Ansible's modules ask
//! it through the same endpoint URL. STS speaks the plain Query protocol, whose envelope
//! differs from EC2's (`<GetCallerIdentityResult>`, `<ResponseMetadata>`, `<ErrorResponse>`).

use crate::error::{code_string, http_status};
use corral_auth::sigv4::Verified;
use corral_control::Control;
use corral_ec2_query::xml::{escape, DECLARATION};
use corral_types::{Error, ErrorCode};

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

pub fn handle(control: &Control, who: &Verified, action: &str, request_id: &str) -> Result<String, Error> {
    if action != "GetCallerIdentity" {
        return Err(Error::new(ErrorCode::InvalidAction, format!("Could not find operation {action} for version 2011-06-15")));
    }
    let account = control.account_id();
    let user = control.store().read(|tx| tx.access_key_get(&who.access_key_id))?.map(|k| k.user_name).unwrap_or_else(|| "root".into());
    let arn = if user == "root" { format!("arn:aws:iam::{account}:root") } else { format!("arn:aws:iam::{account}:user/{user}") };
    let user_id = if user == "root" { account.to_string() } else { who.access_key_id.clone() };
    Ok(format!(
        "{DECLARATION}<GetCallerIdentityResponse xmlns=\"{NS}\"><GetCallerIdentityResult><Arn>{}</Arn><UserId>{}</UserId><Account>{}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></GetCallerIdentityResponse>",
        escape(&arn),
        escape(&user_id),
        escape(account),
        escape(request_id)
    ))
}

pub fn render_error(err: &Error, request_id: &str) -> (u16, String) {
    let kind = if http_status(err.code) >= 500 { "Receiver" } else { "Sender" };
    let code = match err.code {
        ErrorCode::AuthFailure => "InvalidClientTokenId".to_string(),
        c => code_string(c),
    };
    (
        http_status(err.code),
        format!(
            "{DECLARATION}<ErrorResponse xmlns=\"{NS}\"><Error><Type>{kind}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            escape(&code),
            escape(&err.message),
            escape(request_id)
        ),
    )
}
