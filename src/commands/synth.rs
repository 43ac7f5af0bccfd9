//! `netcarve synth`: arguments → `synth::synthesize` → a one-line summary.
use crate::cli::{ContainerKind, SynthArgs};
use crate::error::Result;
use crate::synth::{synthesize, Container, SynthOptions, TimeFieldPlant};

pub fn run(args: &SynthArgs) -> Result<u8> {
    let profile = crate::profile::resolve(&args.profile)?;
    let container = match args.container {
        ContainerKind::Raw => Container::Raw,
        ContainerKind::Crashdump => Container::Crashdump,
        ContainerKind::Bitmap => Container::Bitmap,
        ContainerKind::Elf => Container::Elf,
        ContainerKind::Lime => Container::Lime,
        ContainerKind::Vmware => Container::Vmware,
        ContainerKind::Hiberfil => Container::Hiberfil,
    };
    let opts = SynthOptions {
        profile,
        container,
        seed: args.seed,
        size: args.size,
        pae: !args.no_pae,
        build: args.build,
        extra_endpoints: args.endpoints.unwrap_or(0),
        isf_dir: args.isf_dir.clone(),
        out: args.out.clone(),
        time_field: match (args.move_time_field, args.zero_time_field) {
            (Some(k), _) => TimeFieldPlant::Moved(k.kind()),
            (None, Some(k)) => TimeFieldPlant::Zero(k.kind()),
            (None, None) => TimeFieldPlant::AsProfile,
        },
        tcpip_symbols: !args.no_tcpip_symbols,
        hide_build: args.hide_build,
    };
    let truth = synthesize(&opts)?;
    eprintln!(
        "netcarve synth: {} {} ({} endpoints, {} decoys, {} discrepancies) in {}",
        truth.profile,
        truth.image.container,
        truth.endpoints.len(),
        truth.decoys.len(),
        truth.discrepancies.len(),
        args.out.display()
    );
    Ok(0)
}
