//! A Sift payment method (`$payment_methods[]`, `$payment_method`) as a
//! Custos payout destination.
//!
//! Sift never receives a full account number: its payment methods carry
//! partial identifiers (`$account_number_last5`, the first six and last four
//! characters of an IBAN, `$card_last4`, a PayPal payer id, a wallet
//! address) and an institution (`$routing_number`, `$bank_name`,
//! `$card_bin`, `$payment_gateway`). The identifier is handed to Custos's
//! parser as the destination's `account_number`, so what is stored is the
//! keyed-hash token and the last four characters, as for any destination.
//! An identifier that is not 4 to 34 letters or digits (an e-mail, a long
//! wallet address) is first reduced to 32 hex digits of its SHA-256, which
//! the parser then tokenizes in turn.
//!
//! Partial identifiers collide: two accounts at one bank whose numbers end
//! in the same five digits look like one destination. A platform that can
//! should send its own stable token for the account as `account_token` (a
//! Custos field, without `$`) inside the payment method; it is used as the
//! destination's token as is.
//!
//! Payment types that cannot receive a payout (`$cash`, `$gift_card`, ...)
//! are rejected, naming the field.
//!
//! The payment methods are also kept as an attribute
//! (`sift_payment_methods`), for analysts; that copy loses its identifying
//! fields first ([`without_identifiers`]): IBAN fragments, the last digits
//! of account and card numbers, payer ids, e-mails and wallet addresses,
//! and the holder's name. What identifies the account is then only the
//! destination's token and last four characters, and the holder name is
//! sealed there (`custos_core::pii`).

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::SiftError;

/// Sift's payment method fields; any other `$` field is refused.
const PAYMENT_METHOD_FIELDS: &[&str] = &[
    "$payment_type",
    "$payment_gateway",
    "$card_bin",
    "$card_last4",
    "$avs_result_code",
    "$cvv_result_code",
    "$verification_status",
    "$routing_number",
    "$decline_reason_code",
    "$paypal_payer_id",
    "$paypal_payer_email",
    "$paypal_payer_status",
    "$paypal_address_status",
    "$paypal_protection_eligibility",
    "$paypal_payment_status",
    "$stripe_cvc_check",
    "$stripe_address_line1_check",
    "$stripe_address_line2_check",
    "$stripe_address_zip_check",
    "$stripe_funding",
    "$stripe_brand",
    "$account_number_last5",
    "$account_holder_name",
    "$bank_name",
    "$bank_country",
    "$shortened_iban_first6",
    "$shortened_iban_last4",
    "$sepa_direct_debit_mandate",
    "$wallet_address",
    "$wallet_type",
    "$card_bin_metadata",
];

/// Payment method fields that identify an account or its holder: read to
/// build the destination, never stored with the payment method.
const IDENTIFYING_FIELDS: &[&str] = &[
    "$account_number_last5",
    "$shortened_iban_first6",
    "$shortened_iban_last4",
    "$card_last4",
    "$paypal_payer_id",
    "$paypal_payer_email",
    "$wallet_address",
    "$account_holder_name",
];

/// A payment method (or a list of them) as it is kept in the stored
/// attributes: without the fields in [`IDENTIFYING_FIELDS`].
pub(crate) fn without_identifiers(value: Value) -> Value {
    match value {
        Value::Object(mut method) => {
            method.retain(|name, _| !IDENTIFYING_FIELDS.contains(&name.as_str()));
            Value::Object(method)
        }
        Value::Array(methods) => {
            Value::Array(methods.into_iter().map(without_identifiers).collect())
        }
        other => other,
    }
}

/// The Custos extension: the platform's own token for the account.
const ACCOUNT_TOKEN: &str = "account_token";

/// What a payment type pays into, as Custos sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Bank,
    Card,
    Prepaid,
    Wallet,
    Crypto,
}

const PAYOUT_TYPES: &[(&str, Kind)] = &[
    ("$electronic_fund_transfer", Kind::Bank),
    ("$ach_credit", Kind::Bank),
    ("$ach_debit", Kind::Bank),
    ("$wire_credit", Kind::Bank),
    ("$wire_debit", Kind::Bank),
    ("$sepa_credit", Kind::Bank),
    ("$sepa_instant_credit", Kind::Bank),
    ("$sepa_direct_debit", Kind::Bank),
    ("$credit_card", Kind::Card),
    ("$debit_card", Kind::Card),
    ("$prepaid_card", Kind::Prepaid),
    ("$digital_wallet", Kind::Wallet),
    ("$third_party_processor", Kind::Wallet),
    ("$crypto_currency", Kind::Crypto),
];

/// Sift payment types that nothing can be paid out to.
const NOT_PAYOUT_TYPES: &[&str] = &[
    "$cash",
    "$check",
    "$financing",
    "$gift_card",
    "$in_app_purchase",
    "$invoice",
    "$money_order",
    "$points",
    "$store_credit",
    "$voucher",
];

/// Maps one payment method, found at `path` in the request (for errors:
/// `$payment_methods[0]`), to a Custos destination object.
pub(crate) fn payout_destination(method: &Value, path: &str) -> Result<Value, SiftError> {
    let Value::Object(fields) = method else {
        return Err(SiftError::invalid(format!(
            "`{path}`: expected a payment method object"
        )));
    };
    for name in fields.keys() {
        if name.starts_with('$') {
            if !PAYMENT_METHOD_FIELDS.contains(&name.as_str()) {
                return Err(SiftError::not_reserved(
                    &format!("{path}.{name}"),
                    "$payment_method",
                ));
            }
        } else if name != ACCOUNT_TOKEN {
            return Err(SiftError::invalid_name(format!(
                "`{path}.{name}`: a payment method takes Sift's `$` fields and Custos's \
                 `account_token` only"
            )));
        }
    }
    let text = |name: &str| -> Result<Option<String>, SiftError> {
        match fields.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
            Some(_) => Err(SiftError::invalid(format!(
                "`{path}.{name}`: expected a string"
            ))),
        }
    };
    let payment_type = text("$payment_type")?
        .ok_or_else(|| SiftError::missing(&format!("{path}.$payment_type")))?;
    let kind = match PAYOUT_TYPES.iter().find(|(name, _)| *name == payment_type) {
        Some((_, kind)) => *kind,
        None if NOT_PAYOUT_TYPES.contains(&payment_type.as_str()) => {
            return Err(SiftError::invalid(format!(
                "`{path}.$payment_type`: {payment_type} cannot receive a payout; a payout \
                 destination is a bank account, card, wallet or crypto address"
            )));
        }
        None => {
            let known: Vec<&str> = PAYOUT_TYPES.iter().map(|(name, _)| *name).collect();
            return Err(SiftError::invalid(format!(
                "`{path}.$payment_type`: unknown payment type {payment_type:?}; payout \
                 destinations are {}",
                known.join(", ")
            )));
        }
    };
    let first = |names: &[&str]| -> Result<Option<String>, SiftError> {
        for name in names {
            if let Some(value) = text(name)? {
                return Ok(Some(value));
            }
        }
        Ok(None)
    };
    let (institution_fields, institution_type): (&[&str], &str) = match kind {
        Kind::Bank => (&["$routing_number", "$bank_name"], "bank"),
        Kind::Card => (&["$card_bin", "$payment_gateway"], "other"),
        Kind::Prepaid => (&["$card_bin", "$payment_gateway"], "prepaid"),
        Kind::Wallet => (&["$payment_gateway", "$wallet_type"], "e_money"),
        Kind::Crypto => (&["$wallet_type", "$payment_gateway"], "other"),
    };
    let institution = first(institution_fields)?
        .map(|i| i.trim_start_matches('$').to_string())
        .ok_or_else(|| SiftError::missing(&format!("{path}.{}", institution_fields[0])))?;
    let mut destination = Map::new();
    destination.insert("institution_id".into(), json!(institution));
    destination.insert("institution_type".into(), json!(institution_type));
    if let Some(country) = text("$bank_country")? {
        destination.insert("country".into(), json!(country));
    }
    if let Some(holder) = text("$account_holder_name")? {
        destination.insert("holder_name".into(), json!(holder));
    }
    let iban = match (
        text("$shortened_iban_first6")?,
        text("$shortened_iban_last4")?,
    ) {
        (Some(first6), Some(last4)) => Some(format!("{first6}{last4}")),
        _ => None,
    };
    let identifier = match kind {
        Kind::Bank => iban
            .or(text("$account_number_last5")?)
            .or(text("$shortened_iban_last4")?),
        Kind::Card | Kind::Prepaid => text("$card_last4")?,
        Kind::Wallet => first(&["$paypal_payer_id", "$wallet_address", "$paypal_payer_email"])?,
        Kind::Crypto => text("$wallet_address")?,
    };
    if let Some(token) = text(ACCOUNT_TOKEN)? {
        destination.insert("account_token".into(), json!(token));
        if let Some(last4) = identifier.as_deref().and_then(last_four) {
            destination.insert("account_last4".into(), json!(last4));
        }
        return Ok(Value::Object(destination));
    }
    let identifier_field = match kind {
        Kind::Bank => "$account_number_last5",
        Kind::Card | Kind::Prepaid => "$card_last4",
        Kind::Wallet => "$paypal_payer_id",
        Kind::Crypto => "$wallet_address",
    };
    let identifier =
        identifier.ok_or_else(|| SiftError::missing(&format!("{path}.{identifier_field}")))?;
    destination.insert(
        "account_number".into(),
        json!(account_number_of(&identifier)),
    );
    Ok(Value::Object(destination))
}

/// The identifier as Custos's parser takes an account number: as it is
/// when it is 4 to 34 letters or digits (spaces and dashes allowed),
/// otherwise 32 hex digits of its SHA-256.
fn account_number_of(identifier: &str) -> String {
    let compact: String = identifier
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if (4..=34).contains(&compact.len()) && compact.chars().all(|c| c.is_ascii_alphanumeric()) {
        compact
    } else {
        let digest = Sha256::digest(identifier.as_bytes());
        hex::encode(&digest[..16])
    }
}

fn last_four(identifier: &str) -> Option<String> {
    let alnum: Vec<char> = identifier
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    (alnum.len() >= 4).then(|| alnum[alnum.len() - 4..].iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(method: Value) -> Result<Value, SiftError> {
        payout_destination(&method, "$payment_methods[0]")
    }

    #[test]
    fn an_ach_account_becomes_a_bank_destination() {
        let d = map(
            json!({"$payment_type": "$ach_credit", "$routing_number": "072403005",
            "$account_number_last5": "12345", "$account_holder_name": "Jane Doe",
            "$bank_country": "US"}),
        )
        .unwrap();
        assert_eq!(
            d,
            json!({"institution_id": "072403005", "institution_type": "bank", "country": "US",
                   "holder_name": "Jane Doe", "account_number": "12345"})
        );
    }

    #[test]
    fn an_iban_uses_both_of_its_parts_and_a_bank_name_stands_in_for_a_routing_number() {
        let d = map(
            json!({"$payment_type": "$sepa_credit", "$bank_name": "Bank of Ireland",
            "$shortened_iban_first6": "IE29AI", "$shortened_iban_last4": "6819"}),
        )
        .unwrap();
        assert_eq!(d["institution_id"], "Bank of Ireland");
        assert_eq!(d["account_number"], "IE29AI6819");
    }

    #[test]
    fn cards_wallets_and_own_tokens() {
        let card = map(
            json!({"$payment_type": "$debit_card", "$card_bin": "542486",
            "$card_last4": "4444"}),
        )
        .unwrap();
        assert_eq!(
            (
                &card["institution_id"],
                &card["institution_type"],
                &card["account_number"]
            ),
            (&json!("542486"), &json!("other"), &json!("4444"))
        );
        let wallet = map(
            json!({"$payment_type": "$digital_wallet", "$payment_gateway": "$paypal",
            "$paypal_payer_email": "seller@example.com"}),
        )
        .unwrap();
        assert_eq!(wallet["institution_id"], "paypal");
        assert_eq!(wallet["institution_type"], "e_money");
        let hashed = wallet["account_number"].as_str().unwrap();
        assert_eq!(hashed.len(), 32, "an e-mail is hashed before tokenizing");
        assert!(!hashed.contains("seller"));
        let own = map(
            json!({"$payment_type": "$ach_credit", "$routing_number": "072403005",
            "$account_number_last5": "12345", "account_token": "plat-tok-1"}),
        )
        .unwrap();
        assert_eq!(own["account_token"], "plat-tok-1");
        assert_eq!(own["account_last4"], "2345");
        assert!(own.get("account_number").is_none());
    }

    #[test]
    fn the_stored_payment_method_keeps_no_identifier() {
        let method = json!({"$payment_type": "$sepa_credit", "$bank_name": "Bank of Ireland",
            "$shortened_iban_first6": "IE29AI", "$shortened_iban_last4": "6819",
            "$account_number_last5": "26819", "$account_holder_name": "Jane Doe",
            "$paypal_payer_email": "jane@example.com", "$bank_country": "IE"});
        let kept = without_identifiers(json!([method]));
        assert_eq!(
            kept,
            json!([{"$payment_type": "$sepa_credit", "$bank_name": "Bank of Ireland",
                    "$bank_country": "IE"}])
        );
        // The destination itself still gets the identifier, as a number to tokenize.
        assert_eq!(map(method).unwrap()["account_number"], "IE29AI6819");
    }

    #[test]
    fn what_cannot_be_a_destination_is_refused_naming_the_field() {
        let e = map(json!({"$payment_type": "$gift_card"})).unwrap_err();
        assert_eq!(e.status, 53);
        assert!(
            e.message.contains("$payment_methods[0].$payment_type"),
            "{}",
            e.message
        );
        let e = map(json!({"$card_bin": "542486"})).unwrap_err();
        assert_eq!(e.status, 55);
        let e = map(json!({"$payment_type": "$ach_credit", "$account_number_last5": "12345"}))
            .unwrap_err();
        assert_eq!(e.status, 55);
        assert!(e.message.contains("$routing_number"), "{}", e.message);
        let e = map(
            json!({"$payment_type": "$ach_credit", "$routing_number": "1",
            "$account_number": "12345678"}),
        )
        .unwrap_err();
        assert_eq!(e.status, 105, "a full account number is not a Sift field");
        let e = map(
            json!({"$payment_type": "$ach_credit", "$routing_number": "1",
            "iban": "GB29NWBK60161331926819"}),
        )
        .unwrap_err();
        assert_eq!(e.status, 52);
        assert!(!e.message.contains("60161331926819"), "never echo a number");
    }
}
