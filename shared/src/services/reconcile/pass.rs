//! One kind's pass through work in flight: from where the last run stopped to the newest, then
//! around from the oldest up to that point.

/// Where paging through one kind of work in flight stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Cursor {
    Start,
    After(String),
    Done,
}

/// One kind's pass through work in flight: from where the last run stopped (if it ran out of
/// time) to the end, then around from the oldest up to that point.
#[derive(Debug, Clone)]
pub(super) struct Pass {
    cursor: Cursor,
    /// The last run's stop, while this pass has not come back around to it.
    resumed_from: Option<String>,
    wrapped: bool,
}

impl Pass {
    pub(super) fn from(stop: Option<String>) -> Pass {
        Pass {
            cursor: stop.clone().map_or(Cursor::Start, Cursor::After),
            resumed_from: stop,
            wrapped: false,
        }
    }

    pub(super) fn done(&self) -> bool {
        self.cursor == Cursor::Done
    }

    pub(super) fn after(&self) -> Option<&str> {
        match &self.cursor {
            Cursor::After(c) => Some(c),
            Cursor::Start | Cursor::Done => None,
        }
    }

    /// After a page whose last sort key is `next` (`None`: the last page).
    pub(super) fn advance(&mut self, next: Option<String>) {
        self.cursor = match (next, &self.resumed_from) {
            // Around again past the point this pass started from: everything was read.
            (Some(n), Some(stop)) if self.wrapped && n.as_str() >= stop.as_str() => Cursor::Done,
            (Some(n), _) => Cursor::After(n),
            (None, Some(_)) if !self.wrapped => {
                self.wrapped = true;
                Cursor::Start
            }
            (None, _) => Cursor::Done,
        };
    }

    /// Where the next run starts if this one stops now.
    pub(super) fn stop(&self) -> Option<String> {
        match &self.cursor {
            Cursor::After(c) => Some(c.clone()),
            // Not begun after a wrap: the next run starts at the oldest anyway.
            Cursor::Start | Cursor::Done => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pages(mut pass: Pass, lasts: &[Option<&str>]) -> Vec<Option<String>> {
        let mut read_after = vec![];
        for last in lasts {
            assert!(!pass.done(), "read past the end");
            read_after.push(pass.after().map(str::to_owned));
            pass.advance(last.map(str::to_owned));
        }
        assert!(pass.done(), "not done after {lasts:?}: {pass:?}");
        read_after
    }

    #[test]
    fn a_fresh_pass_reads_from_the_oldest_to_the_end_once() {
        let read = pages(Pass::from(None), &[Some("b"), Some("d"), None]);
        assert_eq!(read, [None, Some("b".into()), Some("d".into())]);
    }

    #[test]
    fn a_resumed_pass_reads_on_to_the_end_then_around_up_to_where_it_started() {
        // Stopped after "m" last time: m→end, then oldest→m, and not a page past it.
        let read = pages(
            Pass::from(Some("m".into())),
            &[Some("p"), None, Some("f"), Some("n")],
        );
        assert_eq!(
            read,
            [Some("m".into()), Some("p".into()), None, Some("f".into())]
        );
    }

    #[test]
    fn a_pass_stopped_by_the_budget_tells_the_next_run_where_to_go_on() {
        let mut pass = Pass::from(None);
        pass.advance(Some("c".into()));
        assert_eq!(pass.stop(), Some("c".into()));
        pass.advance(None);
        assert_eq!(
            pass.stop(),
            None,
            "read to the end: the next run starts at the oldest"
        );
        let mut wrapped = Pass::from(Some("m".into()));
        wrapped.advance(None);
        assert_eq!(
            wrapped.stop(),
            None,
            "wrapped, not begun again: from the oldest"
        );
        wrapped.advance(Some("c".into()));
        assert_eq!(wrapped.stop(), Some("c".into()));
    }
}
