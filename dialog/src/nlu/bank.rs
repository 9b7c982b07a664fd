//! The bundled bank-hotline intent set, in English and Mandarin.
//!
//! Intent names are shared between the languages so a flow can load either set, or both merged
//! ([`bank_intents`]) when callers may speak either.

use super::intent::IntentSpec;

/// Intent names of the bundled set, in definition order.
pub const BANK_INTENTS: [&str; 11] = [
    "balance",
    "transactions",
    "lost_card",
    "fraud",
    "agent",
    "repeat",
    "help",
    "goodbye",
    "yes",
    "no",
    "cancel",
];

/// English bank-hotline intents.
pub fn bank_intents_en() -> Vec<IntentSpec> {
    vec![
        IntentSpec::new("balance")
            .examples([
                "what is my balance",
                "check my balance",
                "check my account",
                "account balance",
                "my balance please",
                "how much money do I have",
                "how much is in my account",
                "how much money is in my account",
                "what is my current balance",
                "tell me my balance",
                "what are my available funds",
                "how much can I spend",
                "what is in my checking account",
                "savings account balance",
            ])
            .keywords(&[
                ("balance", 0.9),
                ("much money", 0.6),
                ("funds", 0.5),
                ("check account", 0.5),
                ("how much", 0.3),
            ]),
        IntentSpec::new("transactions")
            .examples([
                "recent transactions",
                "show me my recent transactions",
                "what were my last transactions",
                "transaction history",
                "account activity",
                "my last payments",
                "recent purchases on my card",
                "what did I spend money on",
                "list my recent charges",
                "read me my statement",
                "did my payment go through",
                "latest deposits",
                "check my recent transactions",
                "where did my money go",
            ])
            .keywords(&[
                ("transaction", 0.9),
                ("history", 0.6),
                ("activity", 0.5),
                ("statement", 0.6),
                ("purchase", 0.6),
                ("charges", 0.5),
                ("payment", 0.5),
                ("deposit", 0.5),
                ("spend", 0.4),
                ("spent", 0.4),
                ("withdrawal", 0.5),
            ]),
        IntentSpec::new("lost_card")
            .examples([
                "I lost my card",
                "I lost my credit card",
                "my card was stolen",
                "someone stole my card",
                "I cannot find my card",
                "block my card",
                "freeze my card",
                "cancel my card",
                "my debit card is missing",
                "report a lost card",
                "report a stolen card",
                "my wallet was stolen",
                "lock my card",
                "I misplaced my card",
            ])
            .keywords(&[
                ("lost", 0.7),
                ("stolen", 0.8),
                ("stole", 0.7),
                ("missing", 0.6),
                ("card", 0.4),
                ("freeze", 0.8),
                ("block", 0.8),
                ("lock", 0.6),
                ("misplaced", 0.7),
                ("wallet", 0.5),
                ("cannot find", 0.6),
            ]),
        IntentSpec::new("fraud")
            .examples([
                "I was scammed",
                "I think I was scammed",
                "someone called and told me to move my money to a safe account",
                "someone asked me to transfer money",
                "I got a call from someone saying they were the bank",
                "report fraud",
                "there is fraud on my account",
                "I see transactions I did not make",
                "someone is pretending to be the bank",
                "a caller asked for my pin",
                "I sent money to a scammer",
                "I got a suspicious call",
                "they told me my account was compromised",
                "I gave my password to someone on the phone",
            ])
            .keywords(&[
                ("scam", 1.0),
                ("scammer", 0.9),
                ("fraud", 1.0),
                ("fraudulent", 0.9),
                ("safe account", 1.0),
                ("suspicious", 0.6),
                ("pretending", 0.6),
                ("move money", 0.6),
                ("transfer money", 0.5),
                ("someone called", 0.5),
                ("someone asked", 0.4),
                ("did not make", 0.5),
                ("compromised", 0.6),
                ("hacked", 0.7),
            ]),
        IntentSpec::new("agent")
            .examples([
                "I want to talk to a human",
                "let me speak to an agent",
                "transfer me to an agent",
                "can I speak to a real person",
                "representative",
                "operator",
                "customer service",
                "talk to someone",
                "speak to somebody",
                "connect me to an advisor",
                "I need a real person",
                "agent please",
                "human please",
                "get me a person",
            ])
            .keywords(&[
                ("agent", 0.9),
                ("human", 0.9),
                ("person", 0.7),
                ("representative", 0.9),
                ("operator", 0.8),
                ("customer service", 0.7),
                ("advisor", 0.7),
                ("real person", 0.9),
                ("talk someone", 0.5),
                ("speak someone", 0.5),
                ("talk somebody", 0.5),
                ("speak somebody", 0.5),
            ]),
        IntentSpec::new("repeat")
            .examples([
                "repeat",
                "repeat that",
                "can you repeat that",
                "say that again",
                "what did you say",
                "come again",
                "pardon",
                "sorry I did not catch that",
                "I did not hear you",
                "one more time",
                "could you say it again",
                "repeat please",
            ])
            .keywords(&[
                ("repeat", 0.9),
                ("again", 0.6),
                ("pardon", 0.8),
                ("say again", 0.8),
                ("did not catch", 0.7),
                ("did not hear", 0.7),
                ("one more time", 0.7),
            ]),
        IntentSpec::new("help")
            .examples([
                "help",
                "I need help",
                "help me",
                "what can I do",
                "what are my options",
                "what can you do",
                "menu",
                "main menu",
                "I do not know what to say",
                "options",
                "what can I say",
                "how does this work",
            ])
            .keywords(&[("help", 0.9), ("option", 0.6), ("menu", 0.7)]),
        IntentSpec::new("goodbye")
            .examples([
                "goodbye",
                "bye",
                "bye bye",
                "that is all",
                "that is all thank you",
                "thank you goodbye",
                "I am done",
                "nothing else",
                "hang up",
                "see you",
            ])
            .keywords(&[
                ("goodbye", 0.9),
                ("bye", 0.9),
                ("hang up", 0.8),
                ("that all", 0.6),
                ("nothing else", 0.6),
                ("done", 0.5),
                ("thank", 0.3),
            ]),
        IntentSpec::new("yes")
            .examples([
                "yes",
                "yeah",
                "yep",
                "yup",
                "sure",
                "correct",
                "that is right",
                "that is correct",
                "right",
                "ok",
                "okay",
                "absolutely",
                "yes please",
                "of course",
                "exactly",
                "sounds good",
            ])
            .keywords(&[
                ("yes", 0.9),
                ("yeah", 0.9),
                ("yep", 0.9),
                ("yup", 0.9),
                ("sure", 0.7),
                ("correct", 0.7),
                ("right", 0.5),
                ("ok", 0.7),
                ("okay", 0.7),
                ("absolutely", 0.8),
                ("of course", 0.6),
            ])
            .negative(&[("not", 0.8), ("no", 0.6), ("wrong", 0.6)]),
        IntentSpec::new("no")
            .examples([
                "no",
                "nope",
                "nah",
                "no thanks",
                "no thank you",
                "that is wrong",
                "that is not right",
                "not correct",
                "incorrect",
                "negative",
                "not really",
                "no it is not",
                "wrong",
            ])
            .keywords(&[
                ("no", 0.9),
                ("nope", 0.9),
                ("nah", 0.8),
                ("wrong", 0.8),
                ("incorrect", 0.8),
                ("not", 0.4),
                ("negative", 0.6),
            ]),
        IntentSpec::new("cancel")
            .examples([
                "cancel",
                "cancel that",
                "never mind",
                "I changed my mind",
                "forget it",
                "stop",
                "go back",
                "I do not want that anymore",
                "scratch that",
                "abort",
            ])
            .keywords(&[
                ("cancel", 0.9),
                ("never mind", 0.9),
                ("nevermind", 0.9),
                ("changed mind", 0.8),
                ("forget", 0.6),
                ("stop", 0.6),
                ("abort", 0.8),
                ("go back", 0.5),
            ])
            .negative(&[("card", 0.6)]),
    ]
}

/// Mandarin bank-hotline intents (simplified characters; traditional input is folded before matching).
pub fn bank_intents_zh() -> Vec<IntentSpec> {
    vec![
        IntentSpec::new("balance")
            .examples([
                "查余额",
                "查询余额",
                "我的余额是多少",
                "账户里还有多少钱",
                "卡里有多少钱",
                "查一下账户余额",
                "我还有多少钱",
            ])
            .keywords(&[("余额", 0.9), ("多少钱", 0.6), ("查询", 0.3)]),
        IntentSpec::new("transactions")
            .examples([
                "最近的交易记录",
                "查交易明细",
                "我的消费记录",
                "最近有哪些交易",
                "查一下账单",
                "账户流水",
            ])
            .keywords(&[
                ("交易", 0.8),
                ("明细", 0.7),
                ("记录", 0.5),
                ("消费", 0.6),
                ("账单", 0.7),
                ("流水", 0.7),
            ]),
        IntentSpec::new("lost_card")
            .examples([
                "我的信用卡丢了",
                "我的卡丢了",
                "银行卡被偷了",
                "我的卡找不到了",
                "挂失",
                "我要挂失银行卡",
                "冻结我的卡",
                "卡被盗了",
            ])
            .keywords(&[
                ("丢", 0.8),
                ("挂失", 0.9),
                ("冻结", 0.8),
                ("被偷", 0.8),
                ("被盗", 0.8),
                ("找不到", 0.6),
                ("卡", 0.3),
            ]),
        IntentSpec::new("fraud")
            .examples([
                "我被骗了",
                "有人打电话让我把钱转到安全账户",
                "有人让我转账",
                "诈骗",
                "我遇到了诈骗",
                "有人冒充银行",
                "有可疑交易",
            ])
            .keywords(&[
                ("骗", 0.9),
                ("诈骗", 1.0),
                ("安全账户", 1.0),
                ("冒充", 0.8),
                ("可疑", 0.6),
                ("转账", 0.4),
                ("有人", 0.3),
            ]),
        IntentSpec::new("agent")
            .examples([
                "我要转人工",
                "转人工",
                "人工服务",
                "我要找客服",
                "找客服",
                "我想和真人说话",
                "接线员",
            ])
            .keywords(&[
                ("人工", 0.9),
                ("客服", 0.9),
                ("真人", 0.8),
                ("接线员", 0.9),
                ("转人工", 1.0),
            ]),
        IntentSpec::new("repeat")
            .examples(["再说一遍", "请重复一遍", "你说什么", "没听清", "重复"])
            .keywords(&[("重复", 0.9), ("再说", 0.8), ("没听清", 0.8), ("一遍", 0.5)]),
        IntentSpec::new("help")
            .examples(["帮助", "我需要帮助", "有哪些选项", "我该怎么办", "菜单"])
            .keywords(&[("帮助", 0.9), ("选项", 0.7), ("菜单", 0.7)]),
        IntentSpec::new("goodbye")
            .examples(["再见", "拜拜", "没有了谢谢", "就这样吧", "挂了"])
            .keywords(&[("再见", 0.9), ("拜拜", 0.9), ("挂了", 0.5), ("谢谢", 0.3)]),
        IntentSpec::new("yes")
            .examples(["是", "是的", "对", "对的", "好的", "可以", "没错", "行"])
            .keywords(&[
                ("是的", 0.9),
                ("对", 0.7),
                ("好的", 0.8),
                ("可以", 0.6),
                ("没错", 0.8),
                ("是", 0.6),
            ])
            .negative(&[("不", 0.8)]),
        IntentSpec::new("no")
            .examples(["不", "不是", "不对", "不要", "不用了", "错了"])
            .keywords(&[
                ("不是", 0.9),
                ("不对", 0.9),
                ("不要", 0.7),
                ("不用", 0.7),
                ("不", 0.5),
                ("错", 0.6),
            ]),
        IntentSpec::new("cancel")
            .examples(["取消", "算了", "我改主意了", "不要了", "返回"])
            .keywords(&[("取消", 0.9), ("算了", 0.9), ("改主意", 0.9), ("返回", 0.5)])
            .negative(&[("卡", 0.5)]),
    ]
}

/// Both languages merged per intent, for lines where callers may speak either.
pub fn bank_intents() -> Vec<IntentSpec> {
    let mut specs = bank_intents_en();
    for zh in bank_intents_zh() {
        match specs.iter_mut().find(|s| s.name == zh.name) {
            Some(spec) => spec.merge(zh),
            None => specs.push(zh),
        }
    }
    specs
}
