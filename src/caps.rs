//! Capabilities and privileges of a launched app. (Being written.)
