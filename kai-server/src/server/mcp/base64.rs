//! Base64 decoding of images sent as tool arguments (RFC 4648).
//!
//! Agents produce base64 in several spellings, so the decoder accepts the standard and the
//! URL-safe alphabet, missing padding, line breaks, and a `data:…;base64,` URL prefix.

use kai_core::Error;

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

    let mut bytes = Vec::with_capacity(usize::try_from(decoded_len).unwrap_or(0));
    let mut group: u32 = 0;
    let mut in_group = 0;
    let mut padding = 0;
    for (offset, byte) in payload.bytes().enumerate() {
        if byte.is_ascii_whitespace() {
            continue;
        }
        if byte == b'=' {
            padding += 1;
            continue;
        }
        if padding > 0 {
            return Err(Error::invalid(
                name,
                format!("has data after `=` padding at offset {offset}"),
            ));
        }
        let Some(value) = symbol_value(byte) else {
            return Err(Error::invalid(
                name,
                format!(
                    "is not base64: `{}` at offset {offset}",
                    char::from(byte).escape_default()
                ),
            ));
        };
        group = group << 6 | u32::from(value);
        in_group += 1;
        if in_group == 4 {
            bytes.extend_from_slice(&group.to_be_bytes()[1..]);
            group = 0;
            in_group = 0;
        }
    }
    match in_group {
        0 => {}
        // One symbol carries 6 bits, less than a byte.
        1 => {
            return Err(Error::invalid(
                name,
                format!("is truncated: {symbols} base64 symbols cannot encode whole bytes"),
            ));
        }
        2 => bytes.push((group >> 4) as u8),
        _ => bytes.extend_from_slice(&(group >> 2).to_be_bytes()[2..]),
    }
    let expected_padding = (4 - in_group) % 4;
    if padding != 0 && padding != expected_padding {
        return Err(Error::invalid(
            name,
            format!("has {padding} `=` padding characters where {expected_padding} belong"),
        ));
    }
    Ok(bytes)
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

/// Returns the 6-bit value of a symbol of the standard or the URL-safe alphabet.
fn symbol_value(byte: u8) -> Option<u8> {
    match byte {
        b'A'..=b'Z' => Some(byte - b'A'),
        b'a'..=b'z' => Some(byte - b'a' + 26),
        b'0'..=b'9' => Some(byte - b'0' + 52),
        b'+' | b'-' => Some(62),
        b'/' | b'_' => Some(63),
        _ => None,
    }
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
    }

    #[test]
    fn whitespace_and_data_urls_are_skipped() {
        assert_eq!(ok("Zm9v\r\nYmFy\n"), b"foobar");
        assert_eq!(ok("data:image/png;base64,Zm9vYmFy"), b"foobar");
        assert_eq!(ok("DATA:image/jpeg;base64,Zg=="), b"f");
    }

    #[test]
    fn non_ascii_input_is_rejected_without_panicking() {
        assert!(err("dat€").contains("is not base64"));
        assert!(err("Zm9v€").contains("offset 4"));
    }

    #[test]
    fn invalid_input_names_the_argument_and_offset() {
        let message = err("Zm9v*mFy");
        assert!(message.contains("imageBase64"), "{message}");
        assert!(message.contains("`*` at offset 4"), "{message}");
    }

    #[test]
    fn misplaced_or_wrong_padding_is_rejected() {
        assert!(err("Zg==Zm9v").contains("after `=` padding"));
        assert!(err("Zm8==").contains("1 belong"));
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
