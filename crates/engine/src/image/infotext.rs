//! AUTOMATIC1111's generation-parameters text ("infotext"), written into PNGs and read back from anyone's:
//!
//! ```text
//! a photo of a cat
//! Negative prompt: blurry
//! Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 0123456789, Model: tiny-sd
//! ```
//!
//! The rules mirror A1111's `parse_generation_parameters` (modules/infotext_utils.py): the last line holds the
//! `Key: value` pairs if it has at least three; lines before it are the prompt until one starts with
//! "Negative prompt:"; a value with a comma, colon or newline is written as a JSON string.

use crate::error::{EngineError, Result};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct InfoText {
    pub prompt: String,
    pub negative_prompt: String,
    /// `Key: value` pairs in order, values unquoted.
    pub params: Vec<(String, String)>,
}

impl InfoText {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// Sets `key`, replacing an earlier value in place.
    pub fn set(&mut self, key: &str, value: impl ToString) {
        let value = value.to_string();
        match self.params.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.params.push((key.to_string(), value)),
        }
    }

    /// `Size: 512x768` as (width, height).
    pub fn size(&self) -> Option<(u32, u32)> {
        let (width, height) = self.get("Size")?.split_once('x')?;
        Some((width.trim().parse().ok()?, height.trim().parse().ok()?))
    }

    pub fn to_text(&self) -> String {
        let mut text = self.prompt.clone();
        if !self.negative_prompt.is_empty() {
            text.push_str("\nNegative prompt: ");
            text.push_str(&self.negative_prompt);
        }
        if !self.params.is_empty() {
            let pairs: Vec<String> = self.params.iter().map(|(k, v)| format!("{k}: {}", quote(v))).collect();
            text.push('\n');
            text.push_str(&pairs.join(", "));
        }
        text
    }

    pub fn parse(text: &str) -> Result<InfoText> {
        let text = text.trim();
        let mut lines: Vec<&str> = text.split('\n').collect();
        let last = lines.pop().unwrap_or_default();
        let params = match parse_params(last) {
            Ok(params) if params.len() >= 3 => params,
            // Not a parameters line: it belongs to the prompt (A1111 does the same).
            _ => {
                lines.push(last);
                Vec::new()
            }
        };
        let mut info = InfoText { params, ..InfoText::default() };
        let mut in_negative = false;
        for line in lines {
            let mut line = line.trim();
            if let Some(rest) = line.strip_prefix("Negative prompt:") {
                in_negative = true;
                line = rest.trim();
            }
            let target = if in_negative { &mut info.negative_prompt } else { &mut info.prompt };
            if !target.is_empty() {
                target.push('\n');
            }
            target.push_str(line);
        }
        if info.prompt.is_empty() && info.negative_prompt.is_empty() && info.params.is_empty() {
            return Err(EngineError::InvalidParametersText { reason: "the text is empty".into() });
        }
        Ok(info)
    }

    /// The units A1111's ControlNet extension writes (`ControlNet 0: "Module: canny, Model: ..., Weight: 1, ..."`),
    /// in order of their number, each as its `Key: value` pairs.
    pub fn control_units(&self) -> Vec<Vec<(String, String)>> {
        let mut units: Vec<(usize, &str)> = self
            .params
            .iter()
            .filter_map(|(key, value)| Some((key.strip_prefix("ControlNet ")?.parse().ok()?, value.as_str())))
            .collect();
        units.sort_by_key(|(index, _)| *index);
        units
            .into_iter()
            .map(|(_, value)| {
                value
                    .split(", ")
                    .filter_map(|field| field.split_once(": "))
                    .map(|(key, value)| (key.trim().to_string(), value.trim().to_string()))
                    .collect()
            })
            .collect()
    }
}

/// A1111's `quote`: plain unless the value has a comma, colon or newline, then a JSON string.
fn quote(value: &str) -> String {
    if value.contains([',', '\n', ':']) {
        serde_json::Value::String(value.to_string()).to_string()
    } else {
        value.to_string()
    }
}

/// `Key: value, Key: "quoted, value", ...` as A1111's `re_param` reads it: a key starts with a word character and
/// holds word characters, spaces, '-' and '/'; a value is a JSON string or runs to the next comma.
fn parse_params(line: &str) -> Result<Vec<(String, String)>> {
    let mut params = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start();
        if rest.is_empty() {
            return Ok(params);
        }
        let colon = rest.find(':').ok_or_else(|| bad(line, "a key without ':'"))?;
        let key = rest[..colon].trim_end();
        let valid_key = key.chars().next().is_some_and(|c| c.is_alphanumeric() || c == '_')
            && key.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | ' ' | '-' | '/'));
        if !valid_key {
            return Err(bad(line, &format!("{key:?} is not a parameter name")));
        }
        rest = rest[colon + 1..].trim_start();
        let value;
        if rest.starts_with('"') {
            let end = closing_quote(rest).ok_or_else(|| bad(line, "an unterminated quoted value"))?;
            value = serde_json::from_str::<String>(&rest[..=end]).map_err(|e| bad(line, &e.to_string()))?;
            rest = rest[end + 1..].trim_start();
            rest = rest.strip_prefix(',').unwrap_or(rest);
        } else {
            let end = rest.find(',').unwrap_or(rest.len());
            value = rest[..end].trim().to_string();
            rest = rest.get(end + 1..).unwrap_or("");
        }
        params.push((key.to_string(), value));
    }
}

/// The byte index of the quote that closes the JSON string starting at `text[0]`.
fn closing_quote(text: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, c) in text.char_indices().skip(1) {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return Some(index),
            _ => {}
        }
    }
    None
}

fn bad(line: &str, reason: &str) -> EngineError {
    EngineError::InvalidParametersText { reason: format!("{reason} in {line:?}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controlnet_units_are_written_quoted_and_read_back_as_fields() {
        let mut info = InfoText { prompt: "a house".into(), ..InfoText::default() };
        info.set("Steps", 20);
        info.set("Seed", 1);
        info.set("ControlNet 1", "Module: none, Model: depth, Weight: 0.5, Guidance Start: 0, Guidance End: 1");
        info.set("ControlNet 0", "Module: canny, Model: tiny-canny, Weight: 1, Threshold A: 100, Threshold B: 200");
        let text = info.to_text();
        assert!(text.contains("ControlNet 0: \"Module: canny, Model: tiny-canny, Weight: 1,"), "{text}");
        let units = InfoText::parse(&text).unwrap().control_units();
        assert_eq!(units.len(), 2);
        assert_eq!(units[0][0], ("Module".to_string(), "canny".to_string()));
        assert_eq!(units[0][4], ("Threshold B".to_string(), "200".to_string()));
        assert_eq!(units[1][1], ("Model".to_string(), "depth".to_string()));
    }

    #[test]
    fn parses_the_design_example() {
        let info = InfoText::parse(
            "a photo of a cat\nNegative prompt: blurry\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, Size: 512x512, Model hash: 0123456789, Model: tiny-sd",
        )
        .unwrap();
        assert_eq!(info.prompt, "a photo of a cat");
        assert_eq!(info.negative_prompt, "blurry");
        assert_eq!(info.get("Sampler"), Some("Euler a"));
        assert_eq!(info.get("Seed"), Some("42"));
        assert_eq!(info.size(), Some((512, 512)));
        assert_eq!(info.get("Model"), Some("tiny-sd"));
    }

    #[test]
    fn round_trips_quoted_values_and_multiline_prompts() {
        let mut info = InfoText {
            prompt: "line one,\nline (two:1.2)".into(),
            negative_prompt: "bad hands\nblurry".into(),
            params: Vec::new(),
        };
        info.set("Steps", 20);
        info.set("Sampler", "DPM++ 2M");
        info.set("Schedule type", "Karras");
        info.set("Model", "my, model: \"v2\"");
        info.set("Seed", 7);
        let text = info.to_text();
        assert!(text.contains(r#"Model: "my, model: \"v2\"""#), "{text}");
        assert_eq!(InfoText::parse(&text).unwrap(), info);
    }

    #[test]
    fn reads_a1111_text_without_negative_prompt_and_with_quoted_lora_hashes() {
        // As A1111 1.10 writes it (a quoted value holding commas and colons).
        let text = "masterpiece, 1girl\nSteps: 30, Sampler: DPM++ 2M, Schedule type: Karras, CFG scale: 6.5, Seed: 3920594183, Size: 512x768, Model hash: 6ce0161689, Model: v1-5-pruned-emaonly, Lora hashes: \"add_detail: 7c6bad76eb54, more: 0123\", Version: v1.10.1";
        let info = InfoText::parse(text).unwrap();
        assert_eq!(info.prompt, "masterpiece, 1girl");
        assert_eq!(info.negative_prompt, "");
        assert_eq!(info.get("Lora hashes"), Some("add_detail: 7c6bad76eb54, more: 0123"));
        assert_eq!(info.get("Version"), Some("v1.10.1"));
        assert_eq!(info.size(), Some((512, 768)));
    }

    #[test]
    fn a_last_line_that_is_not_parameters_stays_in_the_prompt() {
        let info = InfoText::parse("just a prompt: with a colon\nand a second line").unwrap();
        assert_eq!(info.prompt, "just a prompt: with a colon\nand a second line");
        assert!(info.params.is_empty());
        let negative_only = InfoText::parse("cat\nNegative prompt: dog").unwrap();
        assert_eq!((negative_only.prompt.as_str(), negative_only.negative_prompt.as_str()), ("cat", "dog"));
    }

    #[test]
    fn empty_text_is_an_error() {
        assert!(InfoText::parse("  \n ").is_err());
    }
}
