//! Emphasis: AUTOMATIC1111's `parse_prompt_attention` (modules/prompt_parser.py). `(text)` multiplies the weight
//! of its tokens by 1.1, `[text]` divides it by 1.1, `(text:1.3)` multiplies it by 1.3; `\(` `\)` `\[` `\]` `\\`
//! are the characters themselves. Brackets left open apply to the end of the prompt, stray closing ones are text,
//! and a weight that is not a number is text. `BREAK` (a whole word, in capitals) starts a new chunk.

use std::sync::LazyLock;

use regex::Regex;

/// One token of A1111's `re_attention`, tried in this order (leftmost-first, as Python's `re`).
static ATTENTION_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\\\(|\\\)|\\\[|\\\]|\\\\|\\|\(|\[|:\s*([+-]?[.\d]+)\s*\)|\)|\]|[^\\()\[\]:]+|:")
        .expect("the attention pattern is valid")
});
/// `re_break`: the word BREAK with the whitespace around it.
static BREAK_SPLIT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\s*\bBREAK\b\s*").expect("the BREAK pattern is valid"));

/// `(text)` multiplies by this, `[text]` divides by it (prompt_parser.py `round_bracket_multiplier`).
const BRACKET_MULTIPLIER: f64 = 1.1;

/// A run of prompt text and the weight of its tokens. A `BREAK` is the text "BREAK" with weight -1, as in A1111
/// (so a BREAK inside brackets, whose weight the brackets change, is the word "break", as there).
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedText {
    pub text: String,
    pub weight: f64,
}

impl WeightedText {
    fn new(text: &str, weight: f64) -> WeightedText {
        WeightedText { text: text.to_string(), weight }
    }

    pub fn is_break(&self) -> bool {
        self.text == "BREAK" && self.weight == -1.0
    }
}

/// The prompt split into runs of equal weight, exactly as A1111's `parse_prompt_attention` returns them.
///
/// One deliberate difference: A1111 raises an error for a weight its pattern accepts but Python's `float` does not
/// (`(a:1.2.3)`, `(a:.)`); here that weight is kept as text and the bracket closes with 1.1.
pub fn parse_attention(text: &str) -> Vec<WeightedText> {
    let mut out: Vec<WeightedText> = Vec::new();
    let mut round_open: Vec<usize> = Vec::new();
    let mut square_open: Vec<usize> = Vec::new();
    let scale_from = |out: &mut Vec<WeightedText>, start: usize, factor: f64| {
        for item in &mut out[start..] {
            item.weight *= factor;
        }
    };
    for captures in ATTENTION_TOKEN.captures_iter(text) {
        let token = captures.get(0).map_or("", |m| m.as_str());
        let weight = captures.get(1).map(|m| m.as_str());
        if let Some(escaped) = token.strip_prefix('\\') {
            out.push(WeightedText::new(escaped, 1.0));
        } else if token == "(" {
            round_open.push(out.len());
        } else if token == "[" {
            square_open.push(out.len());
        } else if let (Some(weight), Some(&start)) = (weight, round_open.last()) {
            round_open.pop();
            let factor = match weight.parse::<f64>() {
                Ok(factor) => factor,
                Err(_) => {
                    // The token is ":<weight>)": keep everything before the bracket as text.
                    out.push(WeightedText::new(&token[..token.len() - 1], 1.0));
                    BRACKET_MULTIPLIER
                }
            };
            scale_from(&mut out, start, factor);
        } else if token == ")" && !round_open.is_empty() {
            let start = round_open.pop().unwrap_or_default();
            scale_from(&mut out, start, BRACKET_MULTIPLIER);
        } else if token == "]" && !square_open.is_empty() {
            let start = square_open.pop().unwrap_or_default();
            scale_from(&mut out, start, 1.0 / BRACKET_MULTIPLIER);
        } else {
            for (i, part) in BREAK_SPLIT.split(token).enumerate() {
                if i > 0 {
                    out.push(WeightedText::new("BREAK", -1.0));
                }
                out.push(WeightedText::new(part, 1.0));
            }
        }
    }
    for start in round_open {
        scale_from(&mut out, start, BRACKET_MULTIPLIER);
    }
    for start in square_open {
        scale_from(&mut out, start, 1.0 / BRACKET_MULTIPLIER);
    }
    merge_equal_weights(out)
}

/// Neighbouring runs of the same weight become one; an empty prompt is one empty run of weight 1.
fn merge_equal_weights(items: Vec<WeightedText>) -> Vec<WeightedText> {
    let mut merged: Vec<WeightedText> = Vec::with_capacity(items.len());
    for item in items {
        match merged.last_mut() {
            Some(last) if last.weight == item.weight => last.text.push_str(&item.text),
            _ => merged.push(item),
        }
    }
    if merged.is_empty() {
        merged.push(WeightedText::new("", 1.0));
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Vec<(String, f64)> {
        parse_attention(text).into_iter().map(|w| (w.text, w.weight)).collect()
    }

    fn owned(expected: &[(&str, f64)]) -> Vec<(String, f64)> {
        expected.iter().map(|(t, w)| (t.to_string(), *w)).collect()
    }

    /// The examples of A1111's docstring, with its exact floating-point weights.
    #[test]
    fn a1111_docstring_examples() {
        assert_eq!(parsed("normal text"), owned(&[("normal text", 1.0)]));
        assert_eq!(parsed("an (important) word"), owned(&[("an ", 1.0), ("important", 1.1), (" word", 1.0)]));
        assert_eq!(parsed("(unbalanced"), owned(&[("unbalanced", 1.1)]));
        assert_eq!(parsed(r"\(literal\]"), owned(&[("(literal]", 1.0)]));
        assert_eq!(parsed("(unnecessary)(parens)"), owned(&[("unnecessaryparens", 1.1)]));
        assert_eq!(
            parsed("a (((house:1.3)) [on] a (hill:0.5), sun, (((sky)))."),
            owned(&[
                ("a ", 1.0),
                ("house", 1.5730000000000004),
                (" ", 1.1),
                ("on", 1.0),
                (" a ", 1.1),
                ("hill", 0.55),
                (", sun, ", 1.1),
                ("sky", 1.4641000000000006),
                (".", 1.1),
            ])
        );
    }

    #[test]
    fn a_weight_that_is_not_a_number_is_text() {
        assert_eq!(parsed("(word:abc)"), owned(&[("word:abc", 1.1)]));
        assert_eq!(parsed("(a:1.2.3)"), owned(&[("a:1.2.3", 1.1)]));
    }

    #[test]
    fn break_is_a_marker_outside_brackets_and_a_word_inside() {
        assert_eq!(parsed("a BREAK b"), owned(&[("a", 1.0), ("BREAK", -1.0), ("b", 1.0)]));
        assert!(parse_attention("a BREAK b")[1].is_break());
        assert!(!parse_attention("(a BREAK b)")[1].is_break());
        assert!(!parse_attention("a BREAKING b").iter().any(WeightedText::is_break));
    }

    #[test]
    fn deep_and_unbalanced_brackets_never_fail() {
        // Stray "]" are text; the 5000 open "(" apply to the end (1.1^5000, which the chunker later clamps).
        let deep = format!("{}x{}", "(".repeat(5000), "]".repeat(5000));
        let result = parse_attention(&deep);
        assert_eq!(result.len(), 1);
        assert_eq!(result[0].text, format!("x{}", "]".repeat(5000)));
        assert!(result[0].weight > 1e200);
        assert_eq!(parsed(""), owned(&[("", 1.0)]));
        assert_eq!(parsed(")))]]]"), owned(&[(")))]]]", 1.0)]));
    }
}
