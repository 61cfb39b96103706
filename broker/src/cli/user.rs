//! `shardline user ...`: SCRAM users (the requests are `crate::ops::users`,
//! shared with the console). The password never leaves this process: only
//! a random salt and the salted password are sent.

use anyhow::Result;

use super::UserCommand;
use crate::ops::users as ops;

pub fn run(bootstrap: &str, cmd: UserCommand) -> Result<()> {
    let mut client = super::client::connect(bootstrap)?;
    match cmd {
        UserCommand::Create {
            name,
            password,
            mechanism,
            iterations,
        } => {
            ops::create(&mut client, &name, &password, &mechanism, iterations)?;
            println!("user {name}: {mechanism} credentials set ({iterations} iterations)");
        }
        UserCommand::Delete { name } => {
            ops::delete(&mut client, &name)?;
            println!("user {name} deleted");
        }
        UserCommand::List => {
            println!("{:<24} MECHANISMS", "USER");
            for (user, mechs) in ops::list(&mut client)? {
                let mechs: Vec<String> = mechs
                    .iter()
                    .map(|(m, i)| format!("{m} ({i} iterations)"))
                    .collect();
                println!("{user:<24} {}", mechs.join(", "));
            }
        }
    }
    Ok(())
}
