#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    zongzhi_fuzz_targets::action_json(data);
});
