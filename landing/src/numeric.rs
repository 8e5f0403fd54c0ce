//! PostgreSQL's binary `numeric` format, from a decimal string and back to one.
//!
//! Decimal128 holds 34 significant digits and exponents to ±6144: more than
//! `rust_decimal` (28 digits) can carry, and every one of them fits `numeric`. So values
//! go from the exact decimal text (`Decimal128`'s own rendering, or an integer) straight
//! to `numeric`'s base-10000 digits, keeping the scale (`1.50` stays `1.50`).

use bytes::{BufMut, BytesMut};

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// The largest display scale `numeric` stores.
const MAX_DSCALE: i64 = 0x3FFF;

/// A number in `numeric`'s binary layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Numeric {
    sign: u16,
    weight: i16,
    dscale: u16,
    digits: Vec<i16>,
}

/// A number `numeric` cannot hold, or bytes that are not a binary `numeric`; the
/// text says which and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NumericError(pub String);

/// Which of `numeric`'s limits a number is beyond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Beyond {
    /// More than [`MAX_DSCALE`] digits after the point.
    Scale,
    /// A weight (or a count of groups) beyond `numeric`'s 16 bits.
    Range,
}

/// Writes `value`'s decimal digits into `buffer` just before `end`, at least `width`
/// of them (zeros in front); returns where they start.
fn digits_before(buffer: &mut [u8], end: usize, mut value: u64, width: usize) -> usize {
    let mut first = end;
    while value > 0 || end - first < width {
        first -= 1;
        buffer[first] = b'0' + (value % 10) as u8;
        value /= 10;
    }
    first
}

impl Numeric {
    /// A Decimal128's exact value, read from its bits (IEEE 754-2008's decimal
    /// interchange format, binary integer significand) as its coefficient's digits and
    /// exponent: the same number `numeric` gets from the driver's rendering, without
    /// it (that rendering goes bit by bit and was a tenth of a consumer's mapping time
    /// on documents with a decimal). A value `numeric` cannot hold would be refused
    /// with the driver's rendering in the reason (none is: Decimal128's range is
    /// within `numeric`'s).
    ///
    /// # Errors
    /// When the value is beyond what `numeric` holds.
    pub fn from_decimal128(value: bson::Decimal128) -> Result<Self, NumericError> {
        const MAX_COEFFICIENT: u128 = 10_u128.pow(34) - 1;
        const EXPONENT_BIAS: i64 = 6176;
        let bits = u128::from_le_bytes(value.bytes());
        let negative = bits >> 127 == 1;
        match (bits >> 122) & 0x1f {
            // MongoDB renders every NaN without its sign.
            0x1f => return Ok(Numeric::special(NUMERIC_NAN)),
            0x1e if negative => return Ok(Numeric::special(NUMERIC_NINF)),
            0x1e => return Ok(Numeric::special(NUMERIC_PINF)),
            _ => {}
        }
        // The coefficient's first bits are implied `100` when the two bits after the
        // sign are set: then it is above 10^34 - 1, and such a coefficient reads as
        // zero, as the specification and the driver say.
        let (exponent, coefficient) = if (bits >> 125) & 0b11 == 0b11 {
            ((bits >> 111) & 0x3fff, 0)
        } else {
            ((bits >> 113) & 0x3fff, bits & ((1 << 113) - 1))
        };
        let coefficient = if coefficient > MAX_COEFFICIENT {
            0
        } else {
            coefficient
        };
        // 14 bits: the cast cannot truncate.
        let exponent = exponent as i64 - EXPONENT_BIAS;
        // The coefficient's decimal digits (34 at most), without dividing a u128 by
        // ten for each: once by 10^19 when it does not fit 64 bits.
        const TEN_TO_19: u128 = 10_000_000_000_000_000_000;
        let mut buffer = [b'0'; 40];
        let end = buffer.len();
        let first = match u64::try_from(coefficient) {
            Ok(small) => digits_before(&mut buffer, end, small, 1),
            Err(_) => {
                let low = digits_before(&mut buffer, end, (coefficient % TEN_TO_19) as u64, 19);
                digits_before(&mut buffer, low, (coefficient / TEN_TO_19) as u64, 0)
            }
        };
        Numeric::from_digits(negative, &buffer[first..], exponent)
            .or_else(|_| Numeric::parse(&value.to_string()))
    }

    /// Parses `[-]digits[.digits][E[+-]exp]`, `NaN`, `Infinity` and `-Infinity`.
    ///
    /// # Errors
    /// When the text is not such a number, or the value is beyond what `numeric` holds.
    pub fn parse(text: &str) -> Result<Self, NumericError> {
        match text {
            "NaN" | "-NaN" => return Ok(Numeric::special(NUMERIC_NAN)),
            "Infinity" | "+Infinity" | "Inf" => return Ok(Numeric::special(NUMERIC_PINF)),
            "-Infinity" | "-Inf" => return Ok(Numeric::special(NUMERIC_NINF)),
            _ => {}
        }
        let bad = || NumericError(format!("{text:?} is not a decimal number"));
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (
                &rest[..at],
                rest[at + 1..].parse::<i64>().map_err(|_| bad())?,
            ),
            None => (rest, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let exp = exponent
            .checked_sub(frac_part.len() as i64)
            .ok_or_else(bad)?;
        let digits = [int_part.as_bytes(), frac_part.as_bytes()].concat();
        Numeric::from_digits(negative, &digits, exp).map_err(|e| match e {
            Beyond::Scale => NumericError(format!(
                "{text} has more than {MAX_DSCALE} digits after the decimal point, beyond numeric"
            )),
            Beyond::Range => NumericError(format!("{text} is beyond the range of numeric")),
        })
    }

    /// A special value (NaN, an infinity): no digits.
    fn special(sign: u16) -> Self {
        Numeric {
            sign,
            weight: 0,
            dscale: 0,
            digits: Vec::new(),
        }
    }

    /// The number `digits` (ASCII decimal digits, leading zeros allowed) × 10^`exp`,
    /// its scale kept: `numeric`'s base-10000 groups, read straight from the digits
    /// each group covers.
    fn from_digits(negative: bool, digits: &[u8], exp: i64) -> Result<Self, Beyond> {
        let dscale = if exp < 0 {
            exp.checked_neg().unwrap_or(i64::MAX)
        } else {
            0
        };
        if dscale > MAX_DSCALE {
            return Err(Beyond::Scale);
        }
        let Some(nonzero) = digits.iter().position(|d| *d != b'0') else {
            return Ok(Numeric {
                sign: NUMERIC_POS,
                weight: 0,
                dscale: dscale as u16,
                digits: Vec::new(),
            });
        };
        let digits = &digits[nonzero..];
        // The power of ten of the first digit and of the last; digit i has power
        // `top - i`, and group g holds powers 4g to 4g + 3.
        let top = exp
            .checked_add(digits.len() as i64 - 1)
            .ok_or(Beyond::Range)?;
        let weight = top.div_euclid(4);
        let last_group = exp.div_euclid(4);
        if weight > i64::from(i16::MAX)
            || weight < i64::from(i16::MIN)
            || weight - last_group >= i64::from(i16::MAX)
        {
            return Err(Beyond::Range);
        }
        let digit = |power: i64| {
            usize::try_from(top - power)
                .ok()
                .and_then(|i| digits.get(i))
                .map_or(0, |d| i16::from(d - b'0'))
        };
        let mut groups: Vec<i16> = (last_group..=weight)
            .rev()
            .map(|g| (0..4).rev().fold(0, |acc, k| acc * 10 + digit(4 * g + k)))
            .collect();
        while groups.last() == Some(&0) {
            groups.pop();
        }
        Ok(Numeric {
            sign: if negative { NUMERIC_NEG } else { NUMERIC_POS },
            weight: weight as i16,
            dscale: dscale as u16,
            digits: groups,
        })
    }

    /// Appends the binary representation.
    pub fn write(&self, out: &mut BytesMut) {
        out.put_i16(self.digits.len() as i16);
        out.put_i16(self.weight);
        out.put_u16(self.sign);
        out.put_u16(self.dscale);
        for digit in &self.digits {
            out.put_i16(*digit);
        }
    }

    /// The decimal text of a binary `numeric` (as `numeric_out` prints it), whoever
    /// encoded it: the same value always gives the same text, so `verify` can compare
    /// what it would write with what PostgreSQL holds.
    ///
    /// # Errors
    /// When the bytes are not a binary `numeric`.
    pub fn text_of(bytes: &[u8]) -> Result<String, NumericError> {
        let word = |i: usize| -> Result<[u8; 2], NumericError> {
            bytes
                .get(i * 2..i * 2 + 2)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| {
                    NumericError(format!("a numeric of {} bytes is truncated", bytes.len()))
                })
        };
        let ndigits = i16::from_be_bytes(word(0)?);
        let weight = i16::from_be_bytes(word(1)?);
        let sign = u16::from_be_bytes(word(2)?);
        let dscale = u16::from_be_bytes(word(3)?);
        match sign {
            NUMERIC_NAN => return Ok("NaN".to_string()),
            NUMERIC_PINF => return Ok("Infinity".to_string()),
            NUMERIC_NINF => return Ok("-Infinity".to_string()),
            _ => {}
        }
        let count = usize::try_from(ndigits)
            .map_err(|_| NumericError("a numeric with a negative digit count".to_string()))?;
        let digits = (0..count)
            .map(|i| word(4 + i).map(i16::from_be_bytes))
            .collect::<Result<Vec<i16>, NumericError>>()?;
        let digit_at = |w: i32| -> i16 {
            usize::try_from(i32::from(weight) - w)
                .ok()
                .and_then(|i| digits.get(i).copied())
                .unwrap_or(0)
        };
        let mut text = String::new();
        if sign == NUMERIC_NEG && digits.iter().any(|d| *d != 0) {
            text.push('-');
        }
        if weight < 0 {
            text.push('0');
        } else {
            for w in (0..=i32::from(weight)).rev() {
                if w == i32::from(weight) {
                    text.push_str(&digit_at(w).to_string());
                } else {
                    text.push_str(&format!("{:04}", digit_at(w)));
                }
            }
        }
        if dscale > 0 {
            let mut fraction = String::new();
            let mut w = -1;
            while fraction.len() < usize::from(dscale) {
                fraction.push_str(&format!("{:04}", digit_at(w)));
                w -= 1;
            }
            fraction.truncate(usize::from(dscale));
            text.push('.');
            text.push_str(&fraction);
        }
        Ok(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> (u16, i16, u16, Vec<i16>) {
        let v = Numeric::parse(text).expect("parses");
        (v.sign, v.weight, v.dscale, v.digits)
    }

    /// The parser before digits were read straight into groups (it padded the digit
    /// string to whole groups, then cut it): the reference the new one must agree with.
    fn parse_by_padding(text: &str) -> Result<Numeric, NumericError> {
        let special = |sign| Numeric {
            sign,
            weight: 0,
            dscale: 0,
            digits: Vec::new(),
        };
        match text {
            "NaN" | "-NaN" => return Ok(special(NUMERIC_NAN)),
            "Infinity" | "+Infinity" | "Inf" => return Ok(special(NUMERIC_PINF)),
            "-Infinity" | "-Inf" => return Ok(special(NUMERIC_NINF)),
            _ => {}
        }
        let bad = || NumericError(format!("{text:?} is not a decimal number"));
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(at) => (
                &rest[..at],
                rest[at + 1..].parse::<i64>().map_err(|_| bad())?,
            ),
            None => (rest, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if int_part.is_empty() && frac_part.is_empty()
            || !int_part
                .bytes()
                .chain(frac_part.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        // value = digits × 10^exp
        let mut digits: Vec<u8> = int_part
            .bytes()
            .chain(frac_part.bytes())
            .map(|b| b - b'0')
            .collect();
        let exp = exponent - frac_part.len() as i64;
        let dscale = (-exp).max(0);
        if dscale > MAX_DSCALE {
            return Err(NumericError(format!(
                "{text} has more than {MAX_DSCALE} digits after the decimal point, beyond numeric"
            )));
        }
        let first_nonzero = digits.iter().position(|d| *d != 0);
        let Some(first_nonzero) = first_nonzero else {
            return Ok(Numeric {
                sign: NUMERIC_POS,
                weight: 0,
                dscale: dscale as u16,
                digits: Vec::new(),
            });
        };
        digits.drain(..first_nonzero);
        if exp > 0 {
            digits.extend(std::iter::repeat_n(0, exp as usize));
        }
        let mut frac = (-exp).max(0);
        let mut int_len = digits.len() as i64 - frac;
        if int_len < 0 {
            let pad = (-int_len) as usize;
            digits.splice(0..0, std::iter::repeat_n(0, pad));
            int_len = 0;
        }
        // Align the decimal point on a 4-digit group boundary, both sides.
        let left = ((4 - int_len.rem_euclid(4)) % 4) as usize;
        digits.splice(0..0, std::iter::repeat_n(0, left));
        int_len += left as i64;
        let right = ((4 - frac.rem_euclid(4)) % 4) as usize;
        digits.extend(std::iter::repeat_n(0, right));
        frac += right as i64;
        debug_assert_eq!(digits.len() as i64, int_len + frac);

        let mut groups: Vec<i16> = digits
            .chunks(4)
            .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + *d as i16))
            .collect();
        let mut weight = int_len / 4 - 1;
        let leading = groups.iter().take_while(|g| **g == 0).count();
        groups.drain(..leading);
        weight -= leading as i64;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if weight > i16::MAX as i64 || weight < i16::MIN as i64 || groups.len() > i16::MAX as usize
        {
            return Err(NumericError(format!(
                "{text} is beyond the range of numeric"
            )));
        }
        Ok(Numeric {
            sign: if negative { NUMERIC_NEG } else { NUMERIC_POS },
            weight: weight as i16,
            dscale: dscale as u16,
            digits: groups,
        })
    }

    /// Random decimal texts: leading zeros, long fractions, exponents of either sign.
    fn decimal_texts() -> Vec<String> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        let mut texts = Vec::new();
        for _ in 0..20_000 {
            let (int_count, frac_count) = (next(12), next(12));
            let int: String = (0..int_count)
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let frac: String = (0..frac_count)
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let mut text = match (int.is_empty(), frac.is_empty()) {
                (true, true) => "0".to_string(),
                (_, true) => int,
                _ => format!("{int}.{frac}"),
            };
            if next(3) == 0 {
                text = format!("{text}E{}", next(80) as i64 - 40);
            }
            if next(2) == 0 {
                text.insert(0, '-');
            }
            texts.push(text);
        }
        texts
    }

    #[test]
    fn digits_read_into_groups_as_the_padding_parser_read_them() {
        for text in decimal_texts() {
            assert_eq!(Numeric::parse(&text), parse_by_padding(&text), "{text}");
        }
        for value in decimal128s() {
            assert_eq!(
                Numeric::from_decimal128(value),
                parse_by_padding(&value.to_string()),
                "{value}"
            );
        }
        for text in ["1E-16383", "1E-16384", "1E+131068", "0E-16384", "-0.000"] {
            assert_eq!(Numeric::parse(text), parse_by_padding(text), "{text}");
        }
    }

    #[test]
    fn absurd_exponents_are_refused_not_overflowed() {
        for text in [
            "12E9223372036854775807",
            "1E-9223372036854775808",
            "1.5E-9223372036854775807",
        ] {
            assert!(Numeric::parse(text).is_err(), "{text}");
        }
    }

    #[test]
    fn integers_and_fractions() {
        assert_eq!(n("0"), (0, 0, 0, vec![]));
        assert_eq!(n("1"), (0, 0, 0, vec![1]));
        assert_eq!(n("12345"), (0, 1, 0, vec![1, 2345]));
        assert_eq!(n("-1.50"), (NUMERIC_NEG, 0, 2, vec![1, 5000]));
        assert_eq!(n("0.0001"), (0, -1, 4, vec![1]));
        assert_eq!(n("0.00001"), (0, -2, 5, vec![1000]));
        assert_eq!(n("10000"), (0, 1, 0, vec![1]));
    }

    #[test]
    fn exponents_and_specials() {
        assert_eq!(n("1.5E+3"), (0, 0, 0, vec![1500]));
        assert_eq!(n("1E-6"), (0, -2, 6, vec![100]));
        assert_eq!(n("0E-10"), (0, 0, 10, vec![]));
        assert_eq!(n("NaN").0, NUMERIC_NAN);
        assert_eq!(n("-Infinity").0, NUMERIC_NINF);
        assert!(Numeric::parse("1.2.3").is_err());
        assert!(Numeric::parse("").is_err());
        assert!(Numeric::parse("1E-20000").is_err());
    }

    #[test]
    fn binary_numerics_read_back_as_postgres_prints_them() {
        let text = |s: &str| {
            let mut out = BytesMut::new();
            Numeric::parse(s).expect("parses").write(&mut out);
            Numeric::text_of(&out).expect("reads")
        };
        assert_eq!(text("0"), "0");
        assert_eq!(text("-1.50"), "-1.50");
        assert_eq!(text("12345.6789"), "12345.6789");
        assert_eq!(text("0.00001"), "0.00001");
        assert_eq!(text("1.5E+3"), "1500");
        assert_eq!(text("10000"), "10000");
        assert_eq!(text("0E-10"), "0.0000000000");
        assert_eq!(text("-Infinity"), "-Infinity");
        assert!(Numeric::text_of(&[0, 1]).is_err());
    }

    /// Decimal128s of every kind: special, finite with any exponent and coefficient
    /// (small, large, zero), and the non-canonical encodings that read as zero.
    fn decimal128s() -> Vec<bson::Decimal128> {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let pack = |negative: bool, exponent: u128, coefficient: u128| {
            let bits = (u128::from(negative) << 127) | (exponent << 113) | coefficient;
            bson::Decimal128::from_bytes(bits.to_le_bytes())
        };
        let mut values: Vec<bson::Decimal128> = [
            "NaN",
            "-NaN",
            "Infinity",
            "-Infinity",
            "0",
            "-0",
            "0E-10",
            "1.50",
            "-1.5E+3",
            "1E-6176",
            "9.999999999999999999999999999999999E+6144",
            "0.000001",
            "0.0000001",
            "123456789012345678901234567890.1234",
        ]
        .iter()
        .map(|text| text.parse().expect("a decimal"))
        .collect();
        // Either side of the largest coefficient, and the largest that 113 bits hold.
        for coefficient in [10_u128.pow(34) - 1, 10_u128.pow(34), (1 << 113) - 1] {
            values.push(pack(false, 6176, coefficient));
            values.push(pack(true, 0, coefficient));
        }
        for _ in 0..5000 {
            let negative = next() % 2 == 0;
            let exponent = u128::from(next()) % 12_288;
            let coefficient = match next() % 4 {
                0 => u128::from(next() % 1000),
                1 => (u128::from(next()) << 64 | u128::from(next())) % 10_u128.pow(34),
                2 => 10_u128.pow(34) + u128::from(next()),
                _ => u128::from(next()),
            };
            values.push(pack(negative, exponent, coefficient));
        }
        // The second form: the two bits after the sign set.
        for _ in 0..1000 {
            let bits = (0b011_u128 << 125) | (u128::from(next()) << 64 | u128::from(next())) >> 5;
            values.push(bson::Decimal128::from_bytes(bits.to_le_bytes()));
        }
        values
    }

    #[test]
    fn decimal128s_read_from_their_bits_as_from_the_drivers_text() {
        for value in decimal128s() {
            let from_text = Numeric::parse(&value.to_string());
            // Every Decimal128 fits numeric.
            assert!(from_text.is_ok(), "{value}");
            assert_eq!(Numeric::from_decimal128(value), from_text, "{value}");
        }
    }

    #[test]
    fn decimal128_extremes_fit() {
        assert!(Numeric::parse("9.999999999999999999999999999999999E+6144").is_ok());
        assert!(Numeric::parse("1E-6176").is_ok());
    }
}
