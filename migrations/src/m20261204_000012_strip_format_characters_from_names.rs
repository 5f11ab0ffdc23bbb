use sea_orm_migration::{prelude::*, sea_orm::ConnectionTrait};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden, Clone, Copy)]
enum Users {
    Table,
    Name,
    Version,
}

#[derive(DeriveIden, Clone, Copy)]
enum Products {
    Table,
    Name,
    Sku,
    SearchText,
    Version,
}

#[derive(DeriveIden, Clone, Copy)]
enum Orders {
    Table,
    Id,
    Version,
}

#[derive(DeriveIden, Clone, Copy)]
enum OrderItems {
    Table,
    OrderId,
    Name,
    Sku,
}

/// The invisible formatting characters that names refuse from now on: Unicode general category
/// `Cf` in the Basic Multilingual Plane, as `orderly_domain::text::FORMAT_CHARACTER_RANGES` lists
/// them when this migration is written (a migration keeps its own copy: history does not change
/// when the rule does).
const FORMAT_CHARACTERS: &[(char, char)] = &[
    ('\u{00ad}', '\u{00ad}'),
    ('\u{0600}', '\u{0605}'),
    ('\u{061c}', '\u{061c}'),
    ('\u{06dd}', '\u{06dd}'),
    ('\u{070f}', '\u{070f}'),
    ('\u{0890}', '\u{0891}'),
    ('\u{08e2}', '\u{08e2}'),
    ('\u{180e}', '\u{180e}'),
    ('\u{200b}', '\u{200f}'),
    ('\u{202a}', '\u{202e}'),
    ('\u{2060}', '\u{2064}'),
    ('\u{2066}', '\u{206f}'),
    ('\u{feff}', '\u{feff}'),
    ('\u{fff9}', '\u{fffb}'),
];

/// What a user is called when nothing visible is left of their name.
const UNNAMED_USER: &str = "Unnamed user";

fn is_format_character(c: char) -> bool {
    FORMAT_CHARACTERS.iter().any(|(first, last)| (*first..=*last).contains(&c))
}

/// `name` without its formatting characters, trimmed as the domain trims it; `None` when nothing
/// is left.
fn cleaned(name: &str) -> Option<String> {
    let kept: String = name.chars().filter(|c| !is_format_character(*c)).collect();
    let kept = kept.trim();
    (!kept.is_empty()).then(|| kept.to_owned())
}

/// The rows whose `column` holds any formatting character.
fn holding_format_characters(column: impl IntoColumnRef + Copy) -> Condition {
    FORMAT_CHARACTERS
        .iter()
        .flat_map(|(first, last)| *first..=*last)
        .fold(Condition::any(), |any, c| any.add(Expr::col(column).like(format!("%{c}%"))))
}

/// Names (of users and products, and the product names copied into order lines) may no longer
/// hold invisible formatting characters, and a stored row is read through the same rules: names
/// written before the rule lose those characters here, so that every row still reads. A name
/// with nothing else in it becomes [`UNNAMED_USER`], or the product's SKU. Users, products and
/// the orders whose lines change move to their next version, so that no `ETag` names two
/// different contents.
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();

        let users = Query::select()
            .distinct()
            .column(Users::Name)
            .from(Users::Table)
            .cond_where(holding_format_characters(Users::Name))
            .to_owned();
        for row in db.query_all(&users).await? {
            let old: String = row.try_get("", "name")?;
            let new = cleaned(&old).unwrap_or_else(|| UNNAMED_USER.to_owned());
            let update = Query::update()
                .table(Users::Table)
                .value(Users::Name, new)
                .value(Users::Version, Expr::col(Users::Version).add(1))
                .and_where(Expr::col(Users::Name).eq(old))
                .to_owned();
            db.execute(&update).await?;
        }

        let products = Query::select()
            .columns([Products::Name, Products::Sku])
            .from(Products::Table)
            .cond_where(holding_format_characters(Products::Name))
            .to_owned();
        for row in db.query_all(&products).await? {
            let old: String = row.try_get("", "name")?;
            let sku: String = row.try_get("", "sku")?;
            let new = cleaned(&old).unwrap_or_else(|| sku.clone());
            // As the product adapter writes it: name and SKU, lower-cased with Unicode rules.
            let search_text = format!("{} {}", new.to_lowercase(), sku.to_lowercase());
            let update = Query::update()
                .table(Products::Table)
                .value(Products::Name, new)
                .value(Products::SearchText, search_text)
                .value(Products::Version, Expr::col(Products::Version).add(1))
                .and_where(Expr::col(Products::Sku).eq(sku))
                .to_owned();
            db.execute(&update).await?;
        }

        let lines = Query::select()
            .distinct()
            .columns([OrderItems::Name, OrderItems::Sku])
            .from(OrderItems::Table)
            .cond_where(holding_format_characters(OrderItems::Name))
            .to_owned();
        for row in db.query_all(&lines).await? {
            let old: String = row.try_get("", "name")?;
            let sku: String = row.try_get("", "sku")?;
            let new = cleaned(&old).unwrap_or_else(|| sku.clone());
            let these = Condition::all()
                .add(Expr::col(OrderItems::Name).eq(old))
                .add(Expr::col(OrderItems::Sku).eq(sku));
            let orders = Query::update()
                .table(Orders::Table)
                .value(Orders::Version, Expr::col(Orders::Version).add(1))
                .and_where(
                    Expr::col(Orders::Id).in_subquery(
                        Query::select()
                            .column(OrderItems::OrderId)
                            .from(OrderItems::Table)
                            .cond_where(these.clone())
                            .to_owned(),
                    ),
                )
                .to_owned();
            db.execute(&orders).await?;
            let update = Query::update()
                .table(OrderItems::Table)
                .value(OrderItems::Name, new)
                .cond_where(these)
                .to_owned();
            db.execute(&update).await?;
        }
        Ok(())
    }

    /// The characters removed are not kept anywhere: there is nothing to put back, and the
    /// names as they are stay valid for the schema before this migration.
    async fn down(&self, _manager: &SchemaManager) -> Result<(), DbErr> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_their_formatting_characters_and_nothing_else() {
        assert_eq!(cleaned("\u{202e}nimda"), Some("nimda".to_owned()));
        assert_eq!(cleaned(" Ada\u{200b} King\u{feff} "), Some("Ada King".to_owned()));
        assert_eq!(cleaned("Zoë 李雷 Ωmega"), Some("Zoë 李雷 Ωmega".to_owned()));
        assert_eq!(cleaned("\u{200b} \u{2066}\u{2069}"), None);
    }
}
