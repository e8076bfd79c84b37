//! Reading a history: NDJSON lines read on one thread, parsed on worker
//! threads, and handed on in file order with their ground truth, so that a
//! replay uses every core the machine has and still decides in file order.

use std::collections::BTreeMap;
use std::io::BufRead as _;
use std::path::Path;

use custos_core::{Event, EventParser};
use custos_sim::truth::Truth;
use serde_json::{Map, Value};

use crate::Error;

/// Lines per batch handed between threads.
const BATCH: usize = 4_096;

/// Opens a history, naming it in the error.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, Error> {
    std::fs::File::open(path).map_err(|source| Error::Open {
        path: path.display().to_string(),
        source,
    })
}

/// Whether the first event carries a `truth` object: a simulated history.
pub(crate) fn first_event_has_truth(path: &Path) -> Result<bool, Error> {
    let file = open(path)?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line)?;
    Ok(serde_json::from_str::<Map<String, Value>>(&line)
        .is_ok_and(|event| event.get("truth").is_some_and(Value::is_object)))
}

/// Lines read, and those refused (with the first few reasons).
#[derive(Debug, Default)]
pub struct ReadSummary {
    pub events: u64,
    pub rejected: u64,
    pub first_rejections: Vec<String>,
}

type Parsed = Vec<Result<(Event, Truth), String>>;

/// Reads NDJSON events, parses them on worker threads, and calls `each`
/// with every valid one in file order.
pub fn for_each_event(
    input: impl std::io::Read + Send,
    parser: &EventParser,
    mut each: impl FnMut(&Event, &Truth),
) -> Result<ReadSummary, Error> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let mut summary = ReadSummary::default();
    std::thread::scope(|scope| -> Result<(), Error> {
        let (raw_tx, raw_rx) = shared_receiver::channel::<(u64, Vec<(u64, String)>)>(workers * 2);
        let (parsed_tx, parsed_rx) = std::sync::mpsc::sync_channel::<(u64, Parsed)>(workers * 2);
        let reader = scope.spawn(move || -> std::io::Result<()> {
            let mut lines = std::io::BufReader::with_capacity(1 << 20, input).lines();
            let mut batch_index = 0u64;
            let mut line_number = 0u64;
            loop {
                let mut batch = Vec::with_capacity(BATCH);
                for line in lines.by_ref() {
                    line_number += 1;
                    let line = line?;
                    if !line.trim().is_empty() {
                        batch.push((line_number, line));
                    }
                    if batch.len() == BATCH {
                        break;
                    }
                }
                if batch.is_empty() {
                    return Ok(());
                }
                if raw_tx.send((batch_index, batch)).is_err() {
                    return Ok(());
                }
                batch_index += 1;
            }
        });
        for _ in 0..workers {
            let raw_rx = raw_rx.clone();
            let parsed_tx = parsed_tx.clone();
            scope.spawn(move || {
                while let Some((index, batch)) = raw_rx.recv() {
                    let parsed = batch
                        .iter()
                        .map(|(number, line)| {
                            parse_line(parser, line).map_err(|e| format!("line {number}: {e}"))
                        })
                        .collect();
                    if parsed_tx.send((index, parsed)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(parsed_tx);
        drop(raw_rx);
        let mut waiting: BTreeMap<u64, Parsed> = BTreeMap::new();
        let mut next = 0u64;
        for (index, parsed) in parsed_rx {
            waiting.insert(index, parsed);
            while let Some(parsed) = waiting.remove(&next) {
                next += 1;
                for item in parsed {
                    match item {
                        Ok((event, truth)) => {
                            summary.events += 1;
                            each(&event, &truth);
                        }
                        Err(message) => {
                            summary.rejected += 1;
                            if summary.first_rejections.len() < 5 {
                                summary.first_rejections.push(message);
                            }
                        }
                    }
                }
            }
        }
        reader
            .join()
            .map_err(|_| Error::ReaderPanicked)?
            .map_err(Error::Read)?;
        Ok(())
    })?;
    Ok(summary)
}

fn parse_line(parser: &EventParser, line: &str) -> Result<(Event, Truth), String> {
    let mut object: Map<String, Value> =
        serde_json::from_str(line).map_err(|e| format!("invalid json: {e}"))?;
    let truth = Truth::take(&mut object);
    let event = parser.parse_object(object).map_err(|e| e.to_string())?;
    Ok((event, truth))
}

/// A bounded multi-consumer channel over a mutex: the standard library's
/// receivers cannot be shared, and this is the only place that needs one.
mod shared_receiver {
    use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
    use std::sync::{Arc, Mutex};

    pub struct SharedReceiver<T>(Arc<Mutex<Receiver<T>>>);

    impl<T> Clone for SharedReceiver<T> {
        fn clone(&self) -> Self {
            SharedReceiver(Arc::clone(&self.0))
        }
    }

    impl<T> SharedReceiver<T> {
        /// The next item, or `None` once every sender is gone.
        pub fn recv(&self) -> Option<T> {
            let receiver = self.0.lock().ok()?;
            receiver.recv().ok()
        }
    }

    pub fn channel<T>(bound: usize) -> (SyncSender<T>, SharedReceiver<T>) {
        let (tx, rx) = sync_channel(bound);
        (tx, SharedReceiver(Arc::new(Mutex::new(rx))))
    }
}

#[cfg(test)]
mod tests {
    use custos_core::DestinationTokenizer;
    use serde_json::json;

    use super::*;

    /// 2018-03-01.
    const T0: i64 = 1_519_862_400;

    fn time(t: i64) -> String {
        custos_sim::logins::rfc3339(t)
    }

    #[test]
    fn a_bad_line_is_counted_with_its_number_and_the_rest_is_replayed() {
        let parser =
            EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").expect("key"));
        let text = format!(
            "{}\nnot json\n\n{}\n",
            json!({"event_id": "a", "type": "sale", "account_id": "s", "time": time(T0), "amount": 5, "currency": "EUR"}),
            json!({"event_id": "b", "type": "sale", "account_id": "s", "time": time(T0 + 1), "amount": -5, "currency": "EUR"}),
        );
        let mut seen = Vec::new();
        let summary = for_each_event(text.as_bytes(), &parser, |event, _| {
            seen.push(event.event_id.clone());
        })
        .expect("reads");
        assert_eq!(seen, ["a"]);
        assert_eq!(summary.events, 1);
        assert_eq!(summary.rejected, 2);
        assert!(
            summary.first_rejections[0].starts_with("line 2: invalid json"),
            "{:?}",
            summary.first_rejections
        );
        assert!(
            summary.first_rejections[1].starts_with("line 4:"),
            "{:?}",
            summary.first_rejections
        );
    }

    #[test]
    fn events_come_out_in_file_order_across_batches() {
        let parser =
            EventParser::new(DestinationTokenizer::new(b"test-key-0123456789abcdef").expect("key"));
        let count = BATCH * 5 + 17;
        let text: String = (0..count)
            .map(|i| {
                format!(
                    "{}\n",
                    json!({"event_id": format!("e{i}"), "type": "sale", "account_id": "s",
                           "time": time(T0 + i as i64), "amount": 5, "currency": "EUR"})
                )
            })
            .collect();
        let mut seen = Vec::new();
        for_each_event(text.as_bytes(), &parser, |event, _| {
            seen.push(event.event_id.clone())
        })
        .expect("reads");
        let wanted: Vec<String> = (0..count).map(|i| format!("e{i}")).collect();
        assert_eq!(seen, wanted);
    }
}
