//! `shardline group ...`: ListGroups, DescribeGroups + OffsetFetch +
//! ListOffsets (lag), DeleteGroups, and offset resets via OffsetCommit
//! (the requests are `crate::ops::groups`, shared with the console).

use anyhow::{bail, Result};

use super::client::Client;
use super::{GroupCommand, ResetArgs};
use crate::ops::groups::{self as ops, decode_assignment, parse_topic_spec, Target};

pub fn run(bootstrap: &str, cmd: GroupCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        GroupCommand::List => list(&mut client),
        GroupCommand::Describe { group } => describe(&mut client, &group),
        GroupCommand::Delete { group } => {
            ops::delete(&mut client, &group)?;
            println!("Deleted group {group}.");
            Ok(())
        }
        GroupCommand::ResetOffsets(args) => reset(&mut client, &args),
    }
}

fn list(client: &mut Client) -> Result<()> {
    println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
    for g in ops::list_groups(client)? {
        let ptype = if g.protocol_type.is_empty() {
            "-"
        } else {
            &g.protocol_type
        };
        println!("{:<40} {:<20} {ptype}", g.group, g.state);
    }
    Ok(())
}

fn describe(client: &mut Client, group: &str) -> Result<()> {
    let d = ops::describe(client, group)?;
    for w in &d.warnings {
        eprintln!("warning: {w}");
    }
    let g = &d.group;
    println!(
        "GROUP: {group}  STATE: {}  PROTOCOL: {} {}  MEMBERS: {}",
        g.group_state.as_str(),
        g.protocol_type.as_str(),
        g.protocol_data.as_str(),
        g.members.len()
    );
    println!();
    println!(
        "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<20} CLIENT-ID",
        "TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID", "HOST"
    );
    let dash = || "-".to_string();
    for r in &d.rows {
        let m = r.member.map(|i| &g.members[i]);
        println!(
            "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<20} {}",
            r.topic,
            r.partition,
            r.committed.map_or_else(dash, |v| v.to_string()),
            r.log_end.map_or_else(dash, |v| v.to_string()),
            r.lag.map_or_else(dash, |v| v.to_string()),
            m.map_or_else(dash, |m| m.member_id.to_string()),
            m.map_or_else(dash, |m| m.client_host.to_string()),
            m.map_or_else(dash, |m| m.client_id.to_string()),
        );
    }
    for m in &g.members {
        let assigned = decode_assignment(&m.member_assignment).unwrap_or_default();
        if assigned.is_empty() {
            println!(
                "{:<30} {:>9} {:>15} {:>15} {:>8}  {:<40} {:<20} {}",
                "-",
                "-",
                "-",
                "-",
                "-",
                m.member_id.as_str(),
                m.client_host.as_str(),
                m.client_id.as_str()
            );
        }
    }
    Ok(())
}

fn target_of(a: &ResetArgs) -> Result<Target> {
    Ok(
        match (
            a.to_earliest,
            a.to_latest,
            a.to_offset,
            a.to_datetime,
            a.shift_by,
        ) {
            (true, ..) => Target::Earliest,
            (_, true, ..) => Target::Latest,
            (_, _, Some(o), ..) => Target::Offset(o),
            (_, _, _, Some(t), _) => Target::Time(t),
            (_, _, _, _, Some(n)) => Target::Shift(n),
            _ => bail!(
                "choose one of --to-earliest, --to-latest, --to-offset, --to-datetime, --shift-by"
            ),
        },
    )
}

fn reset(client: &mut Client, args: &ResetArgs) -> Result<()> {
    let group = args.group.as_str();
    let target = target_of(args)?;
    let specs: Vec<(String, Option<Vec<i32>>)> = args
        .topic
        .iter()
        .map(|s| parse_topic_spec(s))
        .collect::<Result<_>>()?;
    let plan = ops::plan_reset(client, group, &specs, args.all_topics, target)?;
    if args.execute {
        ops::refuse_active(group, &plan)?;
    }
    println!(
        "{:<30} {:<30} {:>9} {:>15} {:>12}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"
    );
    for (t, rows) in &plan.rows {
        for r in rows {
            let cur = r.current.map_or("-".to_string(), |c| c.to_string());
            println!(
                "{group:<30} {t:<30} {:>9} {cur:>15} {:>12}",
                r.partition, r.new
            );
        }
    }
    if !args.execute {
        if !plan.inactive {
            println!(
                "Note: group '{group}' is {}; --execute requires it to be inactive (Empty).",
                plan.state
            );
        }
        println!("Dry run: nothing committed (add --execute to commit these offsets).");
        return Ok(());
    }
    ops::apply_reset(client, group, &plan)?;
    println!("Committed new offsets for group {group}.");
    Ok(())
}
