//! Malformed scenarios: exit code 2, `file:line:col`, and the words of the message.
