//! The image store, `STATE_DIR/images/sha256/<digest>/`. (Being written.)
