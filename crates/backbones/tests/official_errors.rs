//! Files that are not official RCAR or SGRAF checkpoints, or disagree with their own `opt`, are
//! refused with an error naming the file and the offending key — never a panic.

use burn::tensor::Device;
use rcar_backbones::checkpoint::load_any;
use rcar_backbones::checkpoint::official::load_official;
use std::path::{Path, PathBuf};

fn broken(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/parity/broken")
        .join(name)
}

fn error_of(path: &Path) -> String {
    let err = load_official(path, &Device::flex()).expect_err("must be refused");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    text
}

#[test]
fn shape_disagreeing_with_opt_names_the_key() {
    let text = error_of(&broken("embed_shape.pth"));
    assert!(
        text.contains("module.txt_enc.embed.weight has shape [31, 12]"),
        "{text}"
    );
}

#[test]
fn key_the_configuration_does_not_have() {
    let text = error_of(&broken("extra_key.pth"));
    assert!(
        text.contains("unexpected key module.sim_enc.rcr_modules.5"),
        "{text}"
    );
}

#[test]
fn rcr_matrix_head_at_the_wrong_hidden_width() {
    // E/2 = 22 where the official width is 2·S = 36 (E 44, S 18).
    let text = error_of(&broken("rcr_hidden_e_half.pth"));
    assert!(
        text.contains("rcr_modules.0.rcr_matrix_w.0.weight has shape [22, 18]"),
        "{text}"
    );
}

#[test]
fn missing_opt() {
    let text = error_of(&broken("no_opt.pth"));
    assert!(text.contains("no 'opt'"), "{text}");
}

#[test]
fn torch_file_that_is_not_rcar() {
    let text = error_of(&broken("not_rcar.pth"));
    assert!(text.contains("no 'model'"), "{text}");
}

#[test]
fn not_a_torch_file_at_all() {
    let dir = std::env::temp_dir().join(format!("rcar-official-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("model_best.pth");
    std::fs::write(&path, b"this is not a zip archive").unwrap();
    let text = error_of(&path);
    assert!(text.contains("not a PyTorch checkpoint"), "{text}");
    let missing = dir.join("absent.pth");
    let text = error_of(&missing);
    assert!(text.contains("No such file"), "{text}");
}

fn sgraf_broken(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sgraf/broken")
        .join(name)
}

/// An SGRAF-layout file (`reference/make_sgraf.py`) refused, as `eval` loads it, naming the file.
fn sgraf_error_of(name: &str) -> String {
    let path = sgraf_broken(name);
    let err = load_any(&path, &Device::flex()).expect_err("must be refused");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()), "{text}");
    text
}

#[test]
fn an_sgraf_checkpoint_of_an_unknown_host_is_refused() {
    let text = sgraf_error_of("module_name.pth.tar");
    assert!(
        text.contains("module_name") && text.contains("SGRAF"),
        "{text}"
    );
}

#[test]
fn an_sgraf_checkpoint_disagreeing_with_its_opt_names_the_key() {
    let text = sgraf_error_of("sim_dim.pth.tar");
    assert!(
        text.contains("graph_query_w.weight has shape [18, 18], its opt implies [20, 20]"),
        "{text}"
    );
}

#[test]
fn an_sgraf_key_no_host_has_is_named() {
    let text = sgraf_error_of("extra_key.pth.tar");
    assert!(text.contains("unexpected key 2.SGR_module.3"), "{text}");
}

#[test]
fn a_plugged_sgraf_checkpoint_without_its_regulators_names_the_missing_key() {
    let text = sgraf_error_of("rar_steps.pth.tar");
    assert!(text.contains("2.rar_modules.0"), "{text}");
}
