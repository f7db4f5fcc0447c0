//! Prompt editing, alternation and `AND`, as AUTOMATIC1111 reads them (modules/prompt_parser.py).
//!
//! - `[from:to:when]` uses `from` until step `when`, then `to`; `[to:when]` adds `to` after it; `[from::when]`
//!   removes `from` after it. `when` with a decimal point is a fraction of the steps (`0.5`), without one a step
//!   number (`5`), A1111's current ("new") scheduling.
//! - `[a|b|c]` alternates between its options every step.
//! - `a AND b:0.7` is composable diffusion: each part is a prompt of its own, with a weight (default 1).
//!
//! [`prompt_schedule`] is `get_learned_conditioning_prompt_schedules` for one prompt: the texts the prompt turns
//! into and the last step each is used at. A1111 parses with a lark grammar; the recursive descent below accepts
//! the same language and resolves its ambiguities as lark does there (a bracket that can be prompt editing,
//! alternation or emphasis is one, else it is literal text), checked against lark's own output on a corpus of
//! prompts (tests/fixtures/reference/prompts/parsing.json). A prompt the grammar rejects (a `|` outside
//! alternation, a lone trailing backslash) is used unchanged for every step, as in A1111.

use std::collections::BTreeSet;
use std::sync::LazyLock;

use regex::Regex;

/// Brackets nested deeper than this are literal text: it bounds the parser's recursion (A1111 has no limit, but
/// its Python recursion has one).
const MAX_NESTING: usize = 64;

/// One text of a prompt's schedule: used while the 0-based sampling step is at most `end_at_step`
/// (prompt_parser.py `reconstruct_cond_batch`: `current_step <= end_at_step`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledText {
    pub end_at_step: usize,
    pub text: String,
}

/// The texts `prompt` turns into over `steps` sampling steps, as A1111's
/// `get_learned_conditioning_prompt_schedules([prompt], steps)[0]`.
pub fn prompt_schedule(prompt: &str, steps: usize) -> Vec<ScheduledText> {
    let Some(nodes) = Parser::new(prompt).parse() else {
        return vec![ScheduledText { end_at_step: steps, text: prompt.to_string() }];
    };
    let mut ends = BTreeSet::from([steps]);
    collect_steps(&nodes, steps, &mut ends);
    ends.into_iter()
        .map(|end| {
            let mut text = String::new();
            write_at_step(&nodes, end, steps, &mut text);
            ScheduledText { end_at_step: end, text }
        })
        .collect()
}

/// The entry of `schedule` for the 0-based `step`: the first whose `end_at_step` is not before it (the first
/// entry when none is, as A1111).
pub fn text_at_step(schedule: &[ScheduledText], step: usize) -> usize {
    schedule.iter().position(|entry| step <= entry.end_at_step).unwrap_or(0)
}

/// One part of a prompt split at `AND`.
#[derive(Debug, Clone, PartialEq)]
pub struct SubPrompt {
    pub text: String,
    pub weight: f64,
}

static AND_SPLIT: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"\bAND\b").expect("the AND pattern is valid"));
/// `re_weight`: the part's text, then an optional `:weight` at its end.
static AND_WEIGHT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((?s:.)*?)(?:\s*:\s*([-+]?(?:\d+\.?|\d*\.\d+)))?\s*$").expect("the AND weight pattern is valid")
});

/// The parts of a prompt separated by `AND`, each with its `:weight` (prompt_parser.py
/// `get_multicond_prompt_list`). A prompt without `AND` is one part of weight 1.
pub fn split_and(prompt: &str) -> Vec<SubPrompt> {
    AND_SPLIT
        .split(prompt)
        .map(|part| match AND_WEIGHT.captures(part) {
            Some(captures) => SubPrompt {
                text: captures.get(1).map_or("", |m| m.as_str()).to_string(),
                weight: captures.get(2).and_then(|m| m.as_str().parse().ok()).unwrap_or(1.0),
            },
            None => SubPrompt { text: part.to_string(), weight: 1.0 },
        })
        .collect()
}

/// A parsed prompt: literal text (plain text, whitespace, the brackets of emphasis, stray brackets) and the two
/// constructs that change with the step.
#[derive(Debug)]
enum Node {
    Text(String),
    Scheduled { before: Vec<Node>, after: Vec<Node>, number: String },
    Alternate(Vec<Vec<Node>>),
}

/// The step a `[from:to:when]` switches at (`CollectSteps.scheduled`): a number with a "." is a fraction of
/// the steps, truncated like Python's `int`, and never beyond the last step.
fn switch_step(number: &str, steps: usize) -> i64 {
    let mut value: f64 = number.parse().unwrap_or(0.0);
    if number.contains('.') {
        value *= steps as f64;
    }
    // `as` truncates towards zero and saturates, like int() followed by min(steps, ...) here.
    (value as i64).min(steps as i64)
}

fn collect_steps(nodes: &[Node], steps: usize, ends: &mut BTreeSet<usize>) {
    for node in nodes {
        match node {
            Node::Text(_) => {}
            Node::Scheduled { before, after, number } => {
                if let Ok(end) = usize::try_from(switch_step(number, steps))
                    && end >= 1
                {
                    ends.insert(end);
                }
                collect_steps(before, steps, ends);
                collect_steps(after, steps, ends);
            }
            Node::Alternate(options) => {
                ends.extend(1..=steps);
                for option in options {
                    collect_steps(option, steps, ends);
                }
            }
        }
    }
}

/// The prompt's text at (1-based) schedule step `step` (`AtStep`).
fn write_at_step(nodes: &[Node], step: usize, steps: usize, out: &mut String) {
    for node in nodes {
        match node {
            Node::Text(text) => out.push_str(text),
            Node::Scheduled { before, after, number } => {
                let chosen = if (step as i64) <= switch_step(number, steps) { before } else { after };
                write_at_step(chosen, step, steps, out);
            }
            Node::Alternate(options) => {
                // step >= 1 always: schedule steps are 1-based.
                write_at_step(&options[(step.max(1) - 1) % options.len()], step, steps, out);
            }
        }
    }
}

/// Recursive descent over A1111's grammar:
///
/// ```text
/// start: (prompt | /[][():]/+)*
/// prompt: (emphasized | scheduled | alternate | plain | WHITESPACE)*
/// emphasized: "(" prompt ")" | "(" prompt ":" prompt ")" | "[" prompt "]"
/// scheduled: "[" [prompt ":"] prompt ":" [WHITESPACE] NUMBER [WHITESPACE] "]"
/// alternate: "[" prompt ("|" [prompt])+ "]"
/// plain: /([^\\\[\]():|]|\\.)+/
/// ```
///
/// Inside brackets a prompt cannot hold `:`, `|` or unmatched brackets, so each bracket has at most one reading;
/// at the top level a bracket that has none is a literal character.
struct Parser<'a> {
    text: &'a str,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        Parser { text }
    }

    fn peek(&self, at: usize) -> Option<char> {
        self.text[at..].chars().next()
    }

    fn parse(&self) -> Option<Vec<Node>> {
        let mut nodes = Vec::new();
        let mut at = 0;
        while at < self.text.len() {
            let (prompt, end) = self.prompt(at, 0);
            if end > at {
                nodes.extend(prompt);
                at = end;
                continue;
            }
            // Not a prompt: a bracket or colon with no reading is literal; anything else is a syntax error.
            match self.peek(at) {
                Some(c @ ('[' | ']' | '(' | ')' | ':')) => {
                    nodes.push(Node::Text(c.to_string()));
                    at += 1;
                }
                _ => return None,
            }
        }
        Some(nodes)
    }

    /// The longest prompt starting at `at`, and where it ends.
    fn prompt(&self, mut at: usize, depth: usize) -> (Vec<Node>, usize) {
        let mut nodes = Vec::new();
        loop {
            let plain_end = self.plain(at);
            if plain_end > at {
                push_text(&mut nodes, &self.text[at..plain_end]);
                at = plain_end;
                continue;
            }
            match self.peek(at) {
                Some('[' | '(') => match self.bracketed(at, depth + 1) {
                    Some((bracketed, end)) => {
                        for node in bracketed {
                            match node {
                                Node::Text(text) => push_text(&mut nodes, &text),
                                other => nodes.push(other),
                            }
                        }
                        at = end;
                    }
                    None => return (nodes, at),
                },
                _ => return (nodes, at),
            }
        }
    }

    /// The end of the run of plain characters at `at`: anything but `\[]():|`, or a backslash and the character
    /// after it (not a line break, as Python's `.`).
    fn plain(&self, mut at: usize) -> usize {
        let mut chars = self.text[at..].chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '[' | ']' | '(' | ')' | ':' | '|' => break,
                '\\' => match chars.peek() {
                    Some(&next) if next != '\n' => {
                        chars.next();
                        at += 1 + next.len_utf8();
                    }
                    _ => break,
                },
                _ => at += c.len_utf8(),
            }
        }
        at
    }

    fn expect(&self, at: usize, c: char) -> Option<usize> {
        (self.peek(at) == Some(c)).then_some(at + c.len_utf8())
    }

    /// An emphasis, prompt editing or alternation starting with the bracket at `at`.
    fn bracketed(&self, at: usize, depth: usize) -> Option<(Vec<Node>, usize)> {
        if depth > MAX_NESTING {
            return None;
        }
        let open = self.peek(at)?;
        let (first, after_first) = self.prompt(at + 1, depth);
        if open == '(' {
            if let Some(end) = self.expect(after_first, ')') {
                return Some((wrap("(", first, None, ")"), end));
            }
            let colon = self.expect(after_first, ':')?;
            let (second, after_second) = self.prompt(colon, depth);
            let end = self.expect(after_second, ')')?;
            return Some((wrap("(", first, Some(second), ")"), end));
        }
        match self.peek(after_first)? {
            ']' => Some((wrap("[", first, None, "]"), after_first + 1)),
            ':' => {
                // `[to:when]`, else `[from:to:when]`.
                if let Some((number, end)) = self.number_and_close(after_first + 1) {
                    return Some((vec![Node::Scheduled { before: Vec::new(), after: first, number }], end));
                }
                let (second, after_second) = self.prompt(after_first + 1, depth);
                let colon = self.expect(after_second, ':')?;
                let (number, end) = self.number_and_close(colon)?;
                Some((vec![Node::Scheduled { before: first, after: second, number }], end))
            }
            '|' => {
                let mut options = vec![first];
                let mut at = after_first;
                while let Some(next) = self.expect(at, '|') {
                    let (option, end) = self.prompt(next, depth);
                    options.push(option);
                    at = end;
                }
                let end = self.expect(at, ']')?;
                Some((vec![Node::Alternate(options)], end))
            }
            _ => None,
        }
    }

    /// `[WHITESPACE] NUMBER [WHITESPACE] "]"` at `at`: the number's text and the end of the bracket.
    fn number_and_close(&self, at: usize) -> Option<(String, usize)> {
        static NUMBER: LazyLock<Regex> = LazyLock::new(|| {
            // lark's common.SIGNED_NUMBER: ["+"|"-"] (FLOAT | INT), ASCII digits.
            Regex::new(r"^[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+|[0-9]+)(?:[eE][+-]?[0-9]+)?").expect("valid pattern")
        });
        let at = self.skip_whitespace(at);
        let number = NUMBER.find(&self.text[at..])?.as_str();
        let end = self.skip_whitespace(at + number.len());
        Some((number.to_string(), self.expect(end, ']')?))
    }

    fn skip_whitespace(&self, at: usize) -> usize {
        let rest = &self.text[at..];
        at + rest.len() - rest.trim_start().len()
    }
}

fn push_text(nodes: &mut Vec<Node>, text: &str) {
    if let Some(Node::Text(last)) = nodes.last_mut() {
        last.push_str(text);
    } else {
        nodes.push(Node::Text(text.to_string()));
    }
}

/// An emphasis kept as written: its brackets and colon are text.
fn wrap(open: &str, first: Vec<Node>, second: Option<Vec<Node>>, close: &str) -> Vec<Node> {
    let mut nodes = vec![Node::Text(open.to_string())];
    nodes.extend(first);
    if let Some(second) = second {
        nodes.push(Node::Text(":".to_string()));
        nodes.extend(second);
    }
    nodes.push(Node::Text(close.to_string()));
    nodes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule(prompt: &str, steps: usize) -> Vec<(usize, String)> {
        prompt_schedule(prompt, steps).into_iter().map(|e| (e.end_at_step, e.text)).collect()
    }

    fn owned(expected: &[(usize, &str)]) -> Vec<(usize, String)> {
        expected.iter().map(|(s, t)| (*s, t.to_string())).collect()
    }

    /// A1111's doctests (the lark references in parsing.json cover many more).
    #[test]
    fn a1111_doctests() {
        assert_eq!(schedule("test", 10), owned(&[(10, "test")]));
        assert_eq!(schedule("a [b:3]", 10), owned(&[(3, "a "), (10, "a b")]));
        assert_eq!(schedule("a [b: 3]", 10), owned(&[(3, "a "), (10, "a b")]));
        assert_eq!(schedule("a [[[b]]:2]", 10), owned(&[(2, "a "), (10, "a [[b]]")]));
        assert_eq!(schedule("[(a:2):3]", 10), owned(&[(3, ""), (10, "(a:2)")]));
        assert_eq!(schedule("a [b : c : 1] d", 10), owned(&[(1, "a b  d"), (10, "a  c  d")]));
        assert_eq!(schedule("a[b:[c:d:2]:1]e", 10), owned(&[(1, "abe"), (2, "ace"), (10, "ade")]));
        assert_eq!(schedule("a [unbalanced", 10), owned(&[(10, "a [unbalanced")]));
        assert_eq!(schedule("a [b:.5] c", 10), owned(&[(5, "a  c"), (10, "a b c")]));
        assert_eq!(schedule("((a][:b:c [d:3]", 10), owned(&[(3, "((a][:b:c "), (10, "((a][:b:c d")]));
        let alternating: Vec<(usize, String)> =
            (1..=10).map(|s| (s, if s % 2 == 1 { "a" } else { "(b:1.1)" }.to_string())).collect();
        assert_eq!(schedule("[a|(b:1.1)]", 10), alternating);
    }

    #[test]
    fn the_step_picks_the_first_text_that_has_not_ended() {
        let entries = prompt_schedule("a [b:3]", 10);
        let picked: Vec<usize> = (0..10).map(|step| text_at_step(&entries, step)).collect();
        // A1111 compares the 0-based step with the 1-based end: "a " for steps 0..=3.
        assert_eq!(picked, vec![0, 0, 0, 0, 1, 1, 1, 1, 1, 1]);
    }

    #[test]
    fn unparseable_prompts_are_used_as_written() {
        assert_eq!(schedule("a | b [c:2]", 10), owned(&[(10, "a | b [c:2]")]));
        assert_eq!(schedule("a [b:2] \\", 10), owned(&[(10, "a [b:2] \\")]));
    }

    #[test]
    fn deep_nesting_is_bounded_and_literal() {
        let deep = format!("{}[x:2]{}", "[".repeat(10_000), "]".repeat(10_000));
        let entries = prompt_schedule(&deep, 10);
        // The innermost 64 levels parse (with the prompt editing in them); the outer ones are literal.
        let lengths: Vec<(usize, usize)> = entries.iter().map(|e| (e.end_at_step, e.text.len())).collect();
        assert_eq!(lengths, vec![(2, deep.len() - 5), (10, deep.len() - 4)]);
    }

    #[test]
    fn numbers_are_read_as_python_reads_them() {
        // With a ".", a fraction of the steps (then truncated); without, a step; never beyond the last step.
        let cases = [("+.5", 5), ("0.29", 2), ("1.e-1", 1), ("5.", 10), ("-2", -2), ("1e1", 10), ("3", 3)];
        for (number, expected) in cases {
            assert_eq!(switch_step(number, 10), expected, "{number}");
        }
    }

    #[test]
    fn and_splits_with_weights() {
        let parts = split_and("a cat:1.2 AND  a dog : -0.3  AND ANDROID");
        let parts: Vec<(&str, f64)> = parts.iter().map(|p| (p.text.as_str(), p.weight)).collect();
        assert_eq!(parts, vec![("a cat", 1.2), ("  a dog", -0.3), (" ANDROID", 1.0)]);
        assert_eq!(split_and("(cat:1.2)"), vec![SubPrompt { text: "(cat:1.2)".into(), weight: 1.0 }]);
    }
}
