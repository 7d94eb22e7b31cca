//! Whole runs on a tiny synthetic dataset: seeded runs repeat bit for bit, an interrupted run
//! resumed from its checkpoint ends exactly like an uninterrupted one, and the loss goes down.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};
use rcar_backbones::checkpoint::load_any;
use rcar_backbones::checkpoint::native::load_model;
use rcar_backbones::checkpoint::native::WEIGHTS_FILE;
use rcar_backbones::{Direction, Host, Mode, ModelConfig};
use rcar_data::synth::{generate, SynthConfig};
use rcar_data::vocab::Vocab;
use rcar_eval::Silent;
use rcar_train::config::{LrDecay, OptimizerKind};
use rcar_train::lock::{RunLock, LOCK_FILE};
use rcar_train::plugin::{markdown, rows, run_table};
use rcar_train::run::RunDir;
use rcar_train::{Outcome, TrainConfig, TrainError, Trainer};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// The backend's random generator is global to the process: tests that train take turns.
static SERIAL: Mutex<()> = Mutex::new(());

fn dataset(dir: &Path) {
    let cfg = SynthConfig {
        seed: 3,
        train_images: 24,
        dev_images: 10,
        test_images: 10,
        regions: 6,
        dim: 32,
    };
    generate(dir, &cfg, &mut |_, _, _| {}).unwrap();
}

/// One test at a time (they train), in a scratch directory holding a tiny dataset at `data`.
fn scratch() -> (MutexGuard<'static, ()>, tempfile::TempDir, PathBuf) {
    let turn = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    dataset(&data);
    (turn, tmp, data)
}

fn config(data: &Path, seed: u64) -> TrainConfig {
    let vocab = data.join("vocab.json");
    let vocab_size = Vocab::load(&vocab).unwrap().len();
    TrainConfig {
        name: "tiny".into(),
        note: String::new(),
        data: data.to_path_buf(),
        vocab,
        model: ModelConfig::new(vocab_size, Direction::T2i, Mode::CoopRcar, 2)
            .with_img_dim(32)
            .with_word_dim(8)
            .with_embed_size(16)
            .with_sim_dim(8),
        epochs: 2,
        batch_size: 8,
        lr: 2e-3,
        lr_update: 1,
        lr_decay: LrDecay::Once,
        optimizer: OptimizerKind::Adamw,
        warmup_epochs: 1,
        warmup_steps: 0,
        margin: 0.2,
        grad_clip: 2.0,
        seed,
        augment: true,
        checkpoint_every: 4,
        keep_checkpoints: 2,
        log_every: 1,
        train_chunk: 0,
        eval_mem_budget: 1 << 26,
    }
}

/// The metrics log without wall-clock fields.
fn log(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

/// Every parameter value and BatchNorm statistic of the run's last checkpoint, in module order
/// (the files also hold parameter ids, which differ between runs).
fn weights(run: &Path) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let values = param.val().into_data().convert::<f32>();
            self.0.extend(values.try_to_vec::<f32>().unwrap());
        }
    }
    let last = rcar_train::run::RunDir::new(run)
        .list_checkpoints()
        .unwrap()
        .pop()
        .unwrap();
    let model = load_model(&last, &Device::flex()).unwrap();
    let mut collect = Collect(Vec::new());
    model.visit(&mut collect);
    collect.0
}

fn train(cfg: TrainConfig, out: &Path, max_steps: Option<u64>) -> Outcome {
    let device = Device::flex().autodiff();
    Trainer::new(cfg, out, &device)
        .unwrap()
        .run(&mut Silent, max_steps)
        .unwrap()
}

#[test]
fn seeded_runs_repeat_and_resumed_runs_match_uninterrupted_ones() {
    let (_turn, tmp, data) = scratch();

    let full = tmp.path().join("full");
    let outcome = train(config(&data, 7), &full, None);
    assert!(matches!(outcome, Outcome::Finished { .. }));
    let reference = log(&full);
    // 15 steps per epoch, 2 epochs, one line per step plus one per epoch.
    assert_eq!(reference.len(), 32);

    let again = tmp.path().join("again");
    train(config(&data, 7), &again, None);
    assert_eq!(log(&again), reference, "same seed, same run");
    let final_weights = weights(&full);
    assert_eq!(weights(&again), final_weights);

    let other = tmp.path().join("other");
    train(config(&data, 8), &other, None);
    assert_ne!(
        log(&other)[0]["loss"],
        reference[0]["loss"],
        "the seed matters"
    );

    // Interrupted after step 2 (no checkpoint yet), step 10 (checkpoint at 8) and step 22
    // (checkpoint at 20, epoch 1): the lines written after the last checkpoint are dropped and
    // recomputed identically.
    for stop in [2, 10, 22] {
        let cut = tmp.path().join(format!("cut{stop}"));
        let outcome = train(config(&data, 7), &cut, Some(stop));
        assert_eq!(outcome, Outcome::Interrupted { step: stop });
        let device = Device::flex().autodiff();
        let mut resumed = Trainer::resume(&cut, &device, |_| {}).unwrap();
        assert_eq!(
            resumed.state.step,
            stop / 4 * 4,
            "resumes at the last checkpoint"
        );
        resumed.run(&mut Silent, None).unwrap();
        assert_eq!(log(&cut), reference, "resumed after step {stop}");
        assert_eq!(weights(&cut), final_weights, "resumed after step {stop}");
    }

    // A newest checkpoint cut short is passed over, named, kept aside; the run continues from the
    // one before exactly.
    let cut = tmp.path().join("damaged");
    train(config(&data, 7), &cut, Some(10));
    let newest = cut.join("checkpoints/step-00000008");
    let file = newest.join(WEIGHTS_FILE);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let device = Device::flex().autodiff();
    let mut resumed = Trainer::resume(&cut, &device, |_| {}).unwrap();
    assert_eq!(resumed.state.step, 4);
    assert_eq!(resumed.passed_over.len(), 1);
    let why = &resumed.passed_over[0];
    assert!(
        why.contains(WEIGHTS_FILE) && why.contains("bytes where") && why.contains("damaged-step"),
        "{why}"
    );
    assert!(cut
        .join("checkpoints/damaged-step-00000008")
        .join(WEIGHTS_FILE)
        .is_file());
    resumed.run(&mut Silent, None).unwrap();
    drop(resumed);
    assert_eq!(log(&cut), reference, "resumed past a damaged checkpoint");
    assert_eq!(weights(&cut), final_weights);

    // A damaged best model is an error when it is evaluated, not garbage.
    let best = full.join("best").join(WEIGHTS_FILE);
    let mut bytes = std::fs::read(&best).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&best, bytes).unwrap();
    let err = load_any(&full, &Device::flex()).err().unwrap().to_string();
    assert!(
        err.contains(WEIGHTS_FILE) && err.contains("damaged"),
        "{err}"
    );
}

/// SGRAF's recipe on `host`: Adam, hardest negatives from the start, the lr falling every
/// `lr_update` epochs, no augmentation; SGRAF's vocabulary has no `<mask>`.
fn sgraf_config(data: &Path, host: Host) -> TrainConfig {
    let mut cfg = config(data, 7);
    cfg.model = ModelConfig::new(cfg.model.vocab_size - 1, Direction::T2i, Mode::OnlyRcr, 0)
        .with_host(host)
        .with_regions(6)
        .with_t2i_smooth(9.0)
        .with_img_dim(32)
        .with_word_dim(8)
        .with_embed_size(16)
        .with_sim_dim(8)
        .with_sgr_step(2);
    cfg.optimizer = OptimizerKind::Adam;
    cfg.lr_decay = LrDecay::Every;
    cfg.warmup_epochs = 0;
    cfg.augment = false;
    cfg
}

#[test]
fn sgraf_hosts_train_with_their_recipe_resume_exactly_and_evaluate() {
    // With and without regulators plugged in.
    let (_turn, tmp, data) = scratch();
    let plugged = |host, mode, steps| {
        let mut cfg = sgraf_config(&data, host);
        cfg.model.mode = mode;
        cfg.model.steps = steps;
        cfg
    };
    let runs = [
        ("saf", sgraf_config(&data, Host::Saf), "SGRAF SAF"),
        ("sgr", sgraf_config(&data, Host::Sgr), "SGRAF SGR"),
        (
            "sgr-rcar",
            plugged(Host::Sgr, Mode::CoopRcar, 2),
            "SGRAF SGR +RCAR 2",
        ),
        (
            "saf-rcr",
            plugged(Host::Saf, Mode::OnlyRcr, 1),
            "SGRAF SAF +RCR 1",
        ),
    ];
    for (host, cfg, name) in runs {
        let full = tmp.path().join(host);
        train(cfg.clone(), &full, None);
        let reference = log(&full);
        assert_eq!(reference.len(), 32);
        assert!(reference
            .iter()
            .all(|v| v["kind"] != "step" || v["loss_mode"] == "hardest"));
        // Resumed after step 10 (checkpoint at 8): the same run, bit for bit.
        let cut = tmp.path().join(format!("{host}-cut"));
        train(cfg, &cut, Some(10));
        let device = Device::flex().autodiff();
        let mut resumed = Trainer::resume(&cut, &device, |_| {}).unwrap();
        resumed.run(&mut Silent, None).unwrap();
        assert_eq!(log(&cut), reference, "{host:?} resumed after step 10");
        assert_eq!(
            weights(&cut),
            weights(&full),
            "{host:?} resumed after step 10"
        );
        // The best checkpoint is the host's model.
        let best = load_any(&full, &Device::flex()).unwrap();
        assert_eq!(best.describe(), name);
    }
}

#[test]
fn a_warm_up_in_steps_switches_to_hardest_negatives_inside_the_epoch() {
    let (_turn, tmp, data) = scratch();
    let mut cfg = sgraf_config(&data, Host::Sgr);
    cfg.epochs = 1;
    cfg.warmup_steps = 3;
    let out = tmp.path().join("run");
    train(cfg, &out, Some(6));
    let modes: Vec<String> = log(&out)
        .iter()
        .filter(|l| l["kind"] == "step")
        .map(|l| l["loss_mode"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        modes,
        ["sum", "sum", "sum", "hardest", "hardest", "hardest"]
    );
}

#[test]
fn an_sgraf_host_with_token_augmentation_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    dataset(tmp.path());
    let mut cfg = sgraf_config(tmp.path(), Host::Saf);
    cfg.augment = true;
    let err = cfg
        .validate(Path::new("experiments/x.json"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("x.json") && err.contains("augment false"),
        "{err}"
    );
}

#[test]
fn the_loss_goes_down_on_a_tiny_set() {
    let (_turn, tmp, data) = scratch();
    let mut cfg = config(&data, 1);
    cfg.warmup_epochs = 3; // sum mode throughout: comparable losses
    cfg.lr_update = 10;
    cfg.epochs = 3;
    let run = tmp.path().join("run");
    train(cfg, &run, None);
    let means: Vec<f64> = log(&run)
        .iter()
        .filter(|v| v["kind"] == "epoch")
        .map(|v| v["loss_mean"].as_f64().unwrap())
        .collect();
    assert_eq!(means.len(), 3);
    assert!(means[2] < means[0], "epoch losses {means:?}");
}

#[test]
fn a_feature_row_with_nan_stops_training_before_the_loss_naming_file_and_row() {
    let (_turn, tmp, data) = scratch();
    let ims = data.join("train_ims.npy");
    let (shape, mut values) = rcar_data::npy::read_f32(&ims).unwrap();
    let row_len = shape[1] * shape[2];
    values[5 * row_len + 3] = f32::NAN;
    values[5 * row_len + 4] = f32::INFINITY;
    rcar_data::npy::write_f32(&ims, &shape, &values).unwrap();
    let device = Device::flex().autodiff();
    let err = Trainer::new(config(&data, 7), &tmp.path().join("run"), &device)
        .unwrap()
        .run(&mut Silent, None)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("train_ims.npy") && err.contains(&format!("row 5 (2 of {row_len})")),
        "{err}"
    );
}

#[test]
fn the_plugin_table_trains_every_variant_of_every_host_once() {
    let (_turn, tmp, data) = scratch();
    let mut scan = config(&data, 0);
    scan.epochs = 1;
    let mut saf = sgraf_config(&data, Host::Saf);
    saf.epochs = 1;
    let hosts = [("SCAN t2i".to_string(), scan), ("SAF".to_string(), saf)];
    let out = tmp.path().join("plugin");
    let device = Device::flex();
    let cells = run_table(&hosts, &[5], &[], &out, &device, &mut Silent).unwrap();
    assert_eq!(cells.len(), 8);
    assert!(cells.iter().all(|c| c.seed == 5 && c.rsum > 0.0));
    // Each variant is its own model: a run directory per cell, with the mode it names.
    let model = load_any(&out.join("saf-rcar2-s5"), &device).unwrap();
    assert_eq!(model.describe(), "SGRAF SAF +RCAR 2");
    let table = markdown(&rows(&cells));
    assert_eq!(table.lines().count(), 2 + 8, "{table}");
    // Finished runs are read back, not trained again.
    let again = run_table(&hosts, &[5], &[], &out, &device, &mut Silent).unwrap();
    assert_eq!(again, cells);
    // A changed preset does not read back the old runs as its own.
    let mut changed = hosts.clone();
    changed[0].1.margin = 0.3;
    let err = run_table(&changed, &[5], &[], &out, &device, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("scan-t2i-base-s5") && err.contains("another configuration"),
        "{err}"
    );
    // Nor does a second table in the same directory run beside the first.
    let held = RunLock::acquire(&out).unwrap();
    let err = run_table(&hosts, &[5], &[], &out, &device, &mut Silent)
        .unwrap_err()
        .to_string();
    assert!(err.contains("is writing this run directory"), "{err}");
    drop(held);
    // An earlier table's cell stands in for its run: taken as it is, not the saved result.
    let mut earlier = cells[1].clone();
    earlier.rsum = 123.4;
    let mixed = run_table(&hosts, &[5], &[earlier.clone()], &out, &device, &mut Silent).unwrap();
    assert_eq!(mixed[1], earlier);
    assert_eq!(mixed[..1], cells[..1]);
    assert_eq!(mixed[2..], cells[2..]);
}

#[test]
fn a_second_writer_of_a_run_is_refused_naming_the_directory_and_the_holder() {
    let (_turn, tmp, data) = scratch();
    let out = tmp.path().join("run");
    let device = Device::flex().autodiff();
    let first = Trainer::new(config(&data, 0), &out, &device).unwrap();
    let err = Trainer::resume(&out, &device, |_| {})
        .err()
        .expect("a second writer is refused")
        .to_string();
    let holder = format!("process {}", std::process::id());
    assert!(
        err.contains(out.to_str().unwrap()) && err.contains(&holder),
        "{err}"
    );
    drop(first);
    // The file a dead writer leaves behind locks nothing.
    assert!(out.join(LOCK_FILE).is_file());
    let mut resumed = Trainer::resume(&out, &device, |_| {}).unwrap();
    resumed.run(&mut Silent, Some(1)).unwrap();
}

/// A small tmpfs mounted for one test and unmounted after it: a real full disk (ENOSPC) and a
/// real read-only one (EROFS), which root (CI) cannot simply chmod away.
/// A directory mounted over (a tmpfs, or itself read-only) for one test and unmounted after it.
struct Mounted(PathBuf);

impl Mounted {
    /// A small tmpfs at `dir`.
    fn tmpfs(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        mount(
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"],
            dir,
        );
        Mounted(dir.to_path_buf())
    }

    /// `dir` mounted over itself read-only (a remount of the whole file system is refused while
    /// the trainer holds its log open).
    fn read_only(dir: &Path) -> Self {
        mount(&["--bind", dir.to_str().unwrap()], dir);
        let guard = Mounted(dir.to_path_buf());
        mount(&["-o", "remount,bind,ro"], dir);
        guard
    }

    /// Fills the file system; the returned file holds what was left.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 4096];
        while file.write_all(&chunk).is_ok() {}
        while file.write_all(&chunk[..1]).is_ok() {}
        path
    }
}

fn mount(args: &[&str], dir: &Path) {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(dir)
        .output()
        .expect("mount runs");
    assert!(
        out.status.success(),
        "mount {args:?} {} (this test needs root, as CI runs): {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The checkpoints, `best/`'s weights, and that each checkpoint and `best/` verify and load.
fn intact(run: &Path) -> (Vec<PathBuf>, Vec<u8>) {
    let checkpoints = RunDir::new(run).list_checkpoints().unwrap();
    for dir in checkpoints.iter().chain([&run.join("best")]) {
        assert!(
            rcar_data::checksum::verify(dir).unwrap(),
            "{}",
            dir.display()
        );
        load_model(dir, &Device::flex()).unwrap();
    }
    let hidden: Vec<_> = std::fs::read_dir(run.join("checkpoints"))
        .unwrap()
        .chain(std::fs::read_dir(run).unwrap())
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(hidden.is_empty(), "left behind: {hidden:?}");
    let best = std::fs::read(run.join("best").join(WEIGHTS_FILE)).unwrap();
    (checkpoints, best)
}

#[test]
fn a_full_or_read_only_disk_stops_the_run_naming_the_path_and_keeps_what_was_saved() {
    let (_turn, tmp, data) = scratch();
    let fs = Mounted::tmpfs(&tmp.path().join("fs"), "4m");
    let run = fs.0.join("run");
    let device = Device::flex().autodiff();
    // One epoch with mid-epoch checkpoints and best/; no step lines, so that the next write of
    // the second epoch is a checkpoint.
    let mut cfg = config(&data, 0);
    cfg.epochs = 1;
    cfg.log_every = 1000;
    let first = train(cfg, &run, None);
    assert!(matches!(first, Outcome::Finished { .. }));
    let saved = intact(&run);
    let resume = || Trainer::resume(&run, &device, |c| c.epochs = 2).unwrap();
    // The run stopped at the second epoch's first checkpoint, naming the file and the cause.
    let stopped = |err: TrainError, cause: &str| {
        let err = err.to_string();
        let checkpoints = run.join("checkpoints");
        assert!(
            err.contains(checkpoints.to_str().unwrap()) && err.contains(cause),
            "{err}"
        );
    };

    // A full disk.
    let mut trainer = resume();
    let filler = fs.fill();
    stopped(
        trainer.run(&mut Silent, None).unwrap_err(),
        "No space left on device",
    );
    drop(trainer);
    assert_eq!(intact(&run), saved);
    // best/ too is replaced whole or not at all.
    let model = load_model(&run.join("best"), &Device::flex()).unwrap();
    let err = RunDir::new(&run)
        .save_best(&model, &serde_json::json!({}))
        .unwrap_err()
        .to_string();
    assert!(err.contains("No space left on device"), "{err}");
    assert_eq!(intact(&run), saved);
    std::fs::remove_file(filler).unwrap();

    // A read-only directory.
    let mut trainer = resume();
    let read_only = Mounted::read_only(&run.join("checkpoints"));
    stopped(
        trainer.run(&mut Silent, None).unwrap_err(),
        "Read-only file system",
    );
    drop(trainer);
    assert_eq!(intact(&run), saved);

    // Writable again, the run continues from what was saved and ends.
    drop(read_only);
    let outcome = resume().run(&mut Silent, None).unwrap();
    assert!(matches!(outcome, Outcome::Finished { .. }));
    intact(&run);
}
