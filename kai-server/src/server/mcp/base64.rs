//! Base64 decoding of images sent as tool arguments (RFC 4648), with the `base64` crate.
//!
//! Agents produce base64 in several spellings, so the decoder accepts the standard and the
//! URL-safe alphabet (even mixed in one value), missing padding, whitespace such as line
//! breaks, and a `data:…;base64,` URL prefix.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::{DecodeError, Engine, alphabet};
use kai_core::Error;

/// The standard alphabet, with canonical, shorter or no padding. Nonzero bits after the
/// last whole byte are ignored, as the WHATWG forgiving-base64 decode does, because some
/// encoders set them and the decoded bytes do not depend on them.
const ENGINE: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Encodes `bytes` in the standard alphabet with padding, which every decoder accepts.
pub fn encode(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Decodes `text`, rejecting it before decoding when its data would exceed `max_bytes`.
/// `name` is the argument named in errors.
///
/// # Errors
///
/// Returns [`Error::InvalidInput`] naming `name` for an empty value, a character outside
/// both alphabets, misplaced padding, a truncated final group, or a size above
/// `max_bytes`.
pub fn decode(name: &str, text: &str, max_bytes: u64) -> Result<Vec<u8>, Error> {
    let payload = strip_data_url(text);
    let symbols = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .count();
    if symbols == 0 {
        return Err(Error::invalid(name, "is empty; send the image as base64"));
    }
    // Four symbols carry three bytes.
    let decoded_len = symbols as u64 / 4 * 3 + (symbols as u64 % 4).saturating_sub(1);
    if decoded_len > max_bytes {
        return Err(Error::invalid(
            name,
            format!(
                "decodes to {decoded_len} bytes, above the limit of {max_bytes} bytes \
                 (KAI_MAX_IMAGE_BYTES); send a smaller image"
            ),
        ));
    }
    // The engine reads one alphabet and no whitespace, so whitespace is dropped and the
    // URL-safe symbols become their standard equivalents.
    let standard: Vec<u8> = payload
        .bytes()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|b| match b {
            b'-' => b'+',
            b'_' => b'/',
            other => other,
        })
        .collect();
    ENGINE
        .decode(&standard)
        .map_err(|err| describe(name, payload, symbols, &err))
}

/// Builds the error of a failed decode. Offsets count bytes of `payload`, whitespace
/// included, so that they point into the value the client sent after any `data:` prefix.
fn describe(name: &str, payload: &str, symbols: usize, err: &DecodeError) -> Error {
    match *err {
        DecodeError::InvalidByte(index, b'=') => {
            let offset = payload_offset(payload, index);
            let mut rest = payload.as_bytes()[offset..]
                .iter()
                .filter(|b| !b.is_ascii_whitespace());
            if rest.all(|b| *b == b'=') {
                let padding = payload.bytes().filter(|b| *b == b'=').count();
                let expected = (4 - symbols % 4) % 4;
                return Error::invalid(
                    name,
                    format!("has {padding} `=` padding characters where {expected} belong"),
                );
            }
            Error::invalid(
                name,
                format!(
                    "has data after the `=` padding at offset {offset}; padding may only end \
                     the value"
                ),
            )
        }
        DecodeError::InvalidByte(index, _) => {
            let offset = payload_offset(payload, index);
            // The bytes before the first invalid byte are ASCII, so `offset` starts a
            // character. The fallback only guards against a panic.
            let character = payload
                .get(offset..)
                .and_then(|rest| rest.chars().next())
                .unwrap_or(char::REPLACEMENT_CHARACTER);
            Error::invalid(
                name,
                format!(
                    "is not base64: `{}` at offset {offset}",
                    character.escape_debug()
                ),
            )
        }
        DecodeError::InvalidLength(_) => Error::invalid(
            name,
            format!("is truncated: {symbols} base64 symbols cannot encode whole bytes"),
        ),
        DecodeError::InvalidPadding => Error::invalid(
            name,
            "has the wrong number of `=` padding characters for its length; send canonical \
             padding or none",
        ),
        DecodeError::InvalidLastSymbol { .. } => {
            Error::invalid(name, format!("is not base64: {err}"))
        }
    }
}

/// Returns the offset in `payload` of the byte at `index` among its non-whitespace bytes.
fn payload_offset(payload: &str, index: usize) -> usize {
    payload
        .bytes()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_whitespace())
        .nth(index)
        .map_or(payload.len(), |(offset, _)| offset)
}

/// Returns the part after `base64,` of a `data:` URL, else `text` itself.
fn strip_data_url(text: &str) -> &str {
    let trimmed = text.trim_start();
    if trimmed
        .get(..5)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("data:"))
        && let Some((_, data)) = trimmed.split_once(";base64,")
    {
        return data;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Vec<u8> {
        decode("imageBase64", text, 1 << 20).expect("valid base64")
    }

    fn err(text: &str) -> String {
        decode("imageBase64", text, 1 << 20)
            .expect_err("invalid base64")
            .to_string()
    }

    #[test]
    fn rfc_4648_vectors_decode() {
        for (encoded, plain) in [
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg==", "foob"),
            ("Zm9vYmE=", "fooba"),
            ("Zm9vYmFy", "foobar"),
        ] {
            assert_eq!(ok(encoded), plain.as_bytes(), "{encoded}");
        }
    }

    #[test]
    fn padding_is_optional() {
        assert_eq!(ok("Zm9vYg"), b"foob");
        assert_eq!(ok("Zm9vYmE"), b"fooba");
    }

    #[test]
    fn both_alphabets_decode() {
        let bytes = [0xfb, 0xff, 0xbf];
        assert_eq!(ok("+/+/"), bytes);
        assert_eq!(ok("-_-_"), bytes);
        assert_eq!(ok("+_-/"), bytes);
    }

    #[test]
    fn nonzero_trailing_bits_are_ignored() {
        assert_eq!(ok("Zh=="), b"f");
        assert_eq!(ok("Zm9="), b"fo");
    }

    #[test]
    fn whitespace_and_data_urls_are_skipped() {
        assert_eq!(ok("Zm9v\r\nYmFy\n"), b"foobar");
        assert_eq!(ok(" Zm9v YmE =\n"), b"fooba");
        assert_eq!(ok("data:image/png;base64,Zm9vYmFy"), b"foobar");
        assert_eq!(ok("DATA:image/jpeg;base64,Zg=="), b"f");
    }

    #[test]
    fn non_ascii_input_is_rejected_without_panicking() {
        let message = err("dat€");
        assert!(
            message.contains("is not base64: `€` at offset 3"),
            "{message}"
        );
        let message = err("Zm9v€");
        assert!(message.contains("offset 4"), "{message}");
    }

    #[test]
    fn invalid_input_names_the_argument_and_offset() {
        let message = err("Zm9v*mFy");
        assert!(message.contains("imageBase64"), "{message}");
        assert!(message.contains("`*` at offset 4"), "{message}");
        let message = err("Zm9v\n  *mFy");
        assert!(message.contains("`*` at offset 7"), "{message}");
    }

    #[test]
    fn misplaced_or_wrong_padding_is_rejected() {
        let message = err("Zg==Zm9v");
        assert!(
            message.contains("data after the `=` padding at offset 2"),
            "{message}"
        );
        let message = err("Zm8==");
        assert!(
            message.contains("2 `=` padding characters where 1 belong"),
            "{message}"
        );
        let message = err("Zm9vYmFy =\n");
        assert!(
            message.contains("1 `=` padding characters where 0 belong"),
            "{message}"
        );
    }

    #[test]
    fn truncated_and_empty_input_is_rejected() {
        assert!(err("Zm9vY").contains("truncated"));
        assert!(err("  \n").contains("empty"));
        assert!(err("data:image/png;base64,").contains("empty"));
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let message = decode("imageBase64", "Zm9vYmFy", 5)
            .expect_err("six bytes exceed five")
            .to_string();
        assert!(message.contains("6 bytes"), "{message}");
        assert!(message.contains("limit of 5 bytes"), "{message}");
        assert_eq!(
            decode("imageBase64", "Zm9vYmFy", 6).expect("fits"),
            b"foobar"
        );
    }
}
