//! kai-core errors as JS `Error` objects whose `code` is the error kind's code, such as
//! `KAI_NOT_FOUND`.

use napi::bindgen_prelude::{JsObjectValue, Object};
use napi::{Env, JsValue, Status};

/// Converts a core error for a synchronous throw. napi sets the thrown error's `code` to
/// the status string, which here is the kind's code.
pub fn to_js_error(err: &kai_core::Error) -> napi::Error<String> {
    napi::Error::new(err.kind().code().to_owned(), err.to_string())
}

/// Builds a JS `Error` with `code` set, for rejecting a Promise from a task.
pub fn reject_with_code(env: &Env, err: &kai_core::Error) -> napi::Error {
    let built = env
        .create_error(napi::Error::new(Status::GenericFailure, err.to_string()))
        .and_then(|mut object: Object| {
            object.set_named_property("code", err.kind().code())?;
            Ok(object)
        });
    match built {
        Ok(object) => napi::Error::from(object.to_unknown()),
        Err(failure) => failure,
    }
}

/// Returns the error of a call on a closed `Kai`.
pub fn closed() -> kai_core::Error {
    kai_core::Error::invalid(
        "Kai instance",
        "is closed; open another one with Kai.open()",
    )
}
