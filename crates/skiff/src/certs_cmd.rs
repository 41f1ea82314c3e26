//! `skiff certs`: a development CA and one certificate and key per node,
//! for mutual TLS between peers.

use anyhow::Context;
use skiff_node::tls::DevCa;
use skiff_node::NodeId;
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  skiff certs --nodes 3 --dir certs           # certs/ca.pem, certs/node-1.pem, certs/node-1.key, ...
  skiff certs --nodes 5 --dir certs --force   # a new CA and certificates over the old ones

Node N's certificate names it by the DNS name node-N.skiff (subjectAltName);
a peer whose certificate does not name the node id it claims is refused.
Key files are written with mode 0600. The CA's key is not kept: to add a
node later, make a new set. These certificates are for development and
tests: in production, issue node certificates from your own CA with the
same subjectAltName.";

/// Arguments of `skiff certs`.
#[derive(clap::Args, Debug)]
#[command(after_help = EXAMPLES)]
pub struct CertsArgs {
    /// Nodes to make certificates for, with ids 1..=N.
    #[arg(long, value_name = "N", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=99))]
    nodes: u64,
    /// Where to write ca.pem, node-<id>.pem and node-<id>.key (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// Overwrite files that exist already.
    #[arg(long)]
    force: bool,
}

/// Writes the files and prints the `[tls]` section that names them.
pub fn run(args: &CertsArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let ids = (1..=args.nodes).map(NodeId);
    let tls = DevCa::new()?.write_cluster(&args.dir, ids, args.force)?;
    println!(
        "wrote {} and, for nodes 1 to {}, node-<id>.pem (naming node-<id>.skiff) \
         and node-<id>.key (mode 0600)",
        tls.ca.display(),
        args.nodes,
    );
    println!("\nAdd to cluster.toml (relative paths are taken from the file's directory):\n");
    print!("{}", tls_section(&tls));
    Ok(())
}

/// The `[tls]` section of a cluster configuration naming `tls`'s files.
fn tls_section(tls: &skiff_node::TlsConfig) -> String {
    // Debug quoting escapes as TOML's basic strings do.
    let quoted = |path: &std::path::Path| format!("{:?}", path.display().to_string());
    format!(
        "[tls]\nca = {}\ncert = {}\nkey = {}\n",
        quoted(&tls.ca),
        quoted(&tls.cert),
        quoted(&tls.key)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_printed_section_parses_as_the_configuration_written() {
        let dir = tempfile::tempdir().unwrap();
        let tls = DevCa::new()
            .unwrap()
            .write_cluster(dir.path(), [NodeId(1)], false)
            .unwrap();
        let text = format!(
            "cluster_id = 1\n{}\n[[nodes]]\nid = 1\npeer_address = \"127.0.0.1:1\"\n\
             client_address = \"127.0.0.1:2\"\ndata_dir = \"n\"\n",
            tls_section(&tls)
        );
        let parsed = skiff_node::ClusterConfig::parse(&text).unwrap();
        assert_eq!(parsed.tls, Some(tls));
    }
}
