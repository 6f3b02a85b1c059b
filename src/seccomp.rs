//! The seccomp filter of a launched app. (Being written.)
