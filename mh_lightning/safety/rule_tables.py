"""The rule tables of the crisis detector, as pure data (compiled by `mh_lightning.safety.rules`).

Each rule is one sentence shape on normalised text: `name`, `category` (stated, never derived from
the name), `pattern` (a regular expression with <FRAGMENT> placeholders filled from FRAGMENTS), and
optional `guard` (sentence-level exceptions), `context` (needed elsewhere in the message) and flags
`neg` / `subj` / `past` / `anchor` (see `rules.Rule`). Nothing here runs: edit a table, rerun the tests.
"""
# ruff: noqa: E501  (regular expressions split where they read best, a few characters past the limit)

# -- input rules --------------------------------------------------------------------------
# <NAME> placeholders are filled from _FRAGMENTS before compiling, so each rule reads as a sentence shape.
_PERSON = (r"(?:(?:step|foster|grand)?(?:dad|father|mom|mother|parent|brother|sister|sibling|son|daughter|kid|child"
           r"|children|baby|babies|family)|husband|wife|partner|boyfriend|girlfriend|ex|fiance|fiancee|spouse|roommate"
           r"|flatmate|housemate|boss|manager|supervisor|coworker|co worker|colleague|teacher|professor|classmate"
           r"|neighbor|friend|bully|bullies|uncle|aunt|cousin|grandma|grandpa|in law|nephew|niece|toddler|infant"
           r"|newborn|landlord|student|teammate|guy|man|men|woman|women|girl|boy|lady|dude|people|person|doctor"
           r"|therapist|coach|stepdad|stepmom)s?")
FRAGMENTS = {
    "ADV": r"(?:(?:just|really|so|honestly|literally|actually|seriously|kind of|sort of|truly|genuinely|still|sometimes"
           r"|often|always|again|even|also|fucking|lowkey|legit|simply|only|finally|definitely|probably|totally|maybe"
           r"|now|quietly) ){0,3}",  # bounded: an unbounded run backtracks quadratically on "just just just ..."
    "GAP": r"(?:(?!(?:not|never|no|nor)\b)\w+ )",
    "INTENT": r"(?:want to|wanted to|wish to|would like to|would love to|need to|have to|feel like"
              r"|(?:feel|have) the urge to|urges? to|going to|about to|will|would|might|may|could|should|plan to"
              r"|planning to|planned to|intend to|ready to|decided to|decide to|trying to|try to|tempted to"
              r"|thinking about|thinking of|think about"
              r"|thought about|thoughts (?:of|about)|keep thinking about|can not stop thinking about|considering"
              r"|contemplating"
              r"|fantasi[sz]e about|fantasi[sz]ing about|dream(?:ing)? about|imagining|imagine|obsessing over"
              r"|(?:researching|looking up|googling|planning|figuring out) how to|deserve to|keep wanting to"
              r"|been wanting to)",
    "PERSON": _PERSON,
    "TARGET": r"(?:him|her|them(?: all)?|someone|somebody|anyone|anybody|everyone|everybody|people|the people who"
              r"|children|kids|babies|a child|a baby|(?:my|his|her|their|the|that|this|those|these|our|a|every|all)"
              r" (?:\w+ ){0,2}?" + _PERSON + r"|(?:my|the|our|this|that) (?:\w+ )?(?:school|office|workplace|class"
              r"|church|mosque|synagogue|temple|mall|building))",
    "ABUSER": r"(?:he|she|they|my (?:\w+ ){0,2}?" + _PERSON + r"|his \w+|her \w+|their \w+|someone|somebody"
              r"|a (?:man|guy|woman|stranger|person)|(?:this|the) (?:man|guy|woman|person))",
    "PILLS": r"(?:pills?|tablets?|meds|medication|medicine|capsules|paracetamol|tylenol|acetaminophen|ibuprofen"
             r"|aspirin|advil|antidepressants|painkillers|insulin|melatonin|xanax|benadryl|sleeping pills|drugs)",
    "BODY": r"(?:arms?|wrists?|legs?|thighs?|skin|stomach|body|hips?|ankles?|wounds?|chest)",
    "WEAPON": r"(?:gun|guns|knife|knives|weapon|weapons|rifle|pistol|bomb|machete|explosives?|bat|hammer|axe|blade)",
}


_QUESTION = {"neg": False, "subj": False, "past": False}  # method-seeking questions need no first person
_ACCIDENT = (r"\b(?:by accident|accidentally|accidental|while (?:cooking|chopping|shaving|opening|slicing|cleaning"
             r"|working|playing|running|fixing|gardening|hiking|cycling|skating|climbing|baking)|shaving|cooking"
             r"|chopping|at the gym|working out|lifting|playing|skiing|fell|falling|tripped|paper cut|in the kitchen"
             r"|on (?:the|a|my) (?:\w+ )?(?:oven|stove|pan|tray|iron|kettle|grill|glass|paper|can|door|table|corner"
             r"|edge|fence|nail))\b")
_LEISURE = (r"\b(?:bungee|skydiv\w*|parachut\w*|base jump\w*|pool|trampoline|high dive|diving board|for fun|swim\w*"
            r"|plane|dare)\b"
            # hyperbole with a trivial trigger: "if i hear that song one more time", "for a week off work"
            r"|\bif i (?:have to|hear|see|sit through|watch|read|get|do) (?:\w+ ){0,5}?(?:one more|another|again)\b"
            r"|\bfor (?:a|one|that|this|some) (?:\w+ ){0,2}?(?:day|week|month|recipe|cake|pizza|coffee|nap|holiday)s?"
            r"(?: off)?\b")
_JOKE = (r"\b(?:lol|lmao|lmfao|haha\w*|hehe|jk|just kidding|kidding)\b|[\U0001F602\U0001F923\U0001F606\U0001F605]"
         r"|\bfor (?:eating|borrowing|stealing|taking|using|wearing|drinking|finishing|spoiling|breaking|losing"
         r"|forgetting) (?:my|her|his|the|our)\b")

RULES: tuple[dict, ...] = (
    # -- suicide: explicit intent, ideation, plans, means, goodbyes -------------------------------
    dict(name="suicide.self_kill", category="suicide",
         pattern=r"\b(?:kill|end|off|hang|shoot|shot|drown|poison|suffocat|gas|murder|electrocut"
          r"|stab)\w* myself\b(?! (?:laughing|trying to|working|studying|in the foot|for (?:this|that|nothing|it)"
          r"|over (?:this|that|it)|at (?:work|the gym))\b)",
          guard=r"\b(?:almost|nearly|practically) (?:killed|kill) myself\b|\bin (?:minecraft|roblox|fortnite|gta"
                r"|elden ring|dark souls|(?:the|a|this|that|my) (?:video )?game)\b|\brespawn\w*"),
    dict(name="suicide.own_life", category="suicide",
         pattern=r"\b(?:tak(?:e|ing)|took|taken|end(?:ing|ed)?) my (?:own )?life\b(?! (?:back|in (?:a|the"
          r"|another) (?:new )?direction|into my own hands|seriously|forward|to the next level|one day at a time)\b)"
          r"|\b(?:die|dying|death) by my own hand"),
    dict(name="suicide.end_all", category="suicide",
         pattern=r"\b(?:end|ending|finish|finishing) (?:it all|everything|things for good|it for good|myself|my suffering"
          r"|my misery|my existence|all of this)\b"
          r"|\bend(?:ing)? it (?:tonight|today|now|soon|this week|tomorrow|for good)\b"
          r"|\bi am ending it\b(?! with)"),
    dict(name="suicide.end_it", category="suicide",
         pattern=r"\b(?:<INTENT>|telling me to|tells me to) <ADV>end(?:ing)? (?:it|things)\b(?! (?:with|off|between"
          r"|for (?:him|her|them))\b)"),
    dict(name="suicide.commit", category="suicide",
         pattern=r"\b<INTENT> <ADV>(?:commit |do |attempt )?suicide\b"),
    dict(name="suicide.want_it_over", category="suicide",
         pattern=r"\b(?:want|wish|need|wanting)(?: for)? (?:everything|it all|all of this|this all|my life|life|the pain"
          r"|this pain|the suffering) (?:all )?to (?:end|be over|stop forever|stop for good)\b"
          r"|\b(?:want|wish|need) (?:everything|it all|all of this|this all|my life|life) to stop[.,!]* (?:permanently"
          r"|forever|for good)\b"),
    dict(name="suicide.want_die", category="suicide",
         pattern=r"\b(?:want|wanted|wish|wishing|need|ready|deserve|hope|hoping|pray|praying|would like|would love|trying"
          r"|longing|choose|prefer|supposed|been wanting|keep wanting"
          r"|i am wanting) to (?:just )?die\b(?! (?:of (?!(?:an )?overdose)|for (?:my|you|him|her|them|a|the|it|this"
          r"|that|love|our|your|his|their|what|something|nothing|\w+ sake)\b|laughing|from (?:embarrassment|boredom"
          r"|cringe|laughter)|a (?:hero|heroic|noble|warrior)|in (?:battle|a video game|the game)|happy|old|rich"
          r"|on stage|(?:peacefully |happily )?(?:at (?:\d+|age|an old|a ripe)|surrounded|of old age|in my sleep at"
          r"|when i am (?:old|\d+)))\b)"
          r"|\bgoing to die (?:tonight|today|by my own hand|by suicide)"
          r"|\b(?:drink|drinking|starve|starving|bleed|bleeding)(?: myself)? (?:until|till) i (?:die|am dead"
          r"|stop breathing)\b"
          r"|\b(?:drink|drinking|starve|starving) myself to death\b"
          r"|\b(?:want|wish|need|ready|going) to (?:join|be with|see) my (?:\w+ ){0,2}?(?:in heaven"
          r"|on the other side)\b"
          r"|\bi (?:\w+ )?(?:should|might as well|may as well) (?:just )?die\b(?! (?:of|laughing|from)\b)"
          r"|\bpart of me (?:\w+ )?wants to die"),
    dict(name="suicide.hope_die", category="suicide",
         pattern=r"\b(?:hope|hoping|pray|praying|wish) (?:that )?i (?:just )?(?:die|would die|could die|do not wake up"
          r"|will not wake up|never wake up|do not make it|get hit by (?:a|the) (?:car|bus|train|truck))\b"
          r"|\b(?:wish|wishing|hope|hoping|pray|praying) (?:that )?(?:a|the|some) (?:\w+ )?(?:car|bus|train|truck"
          r"|plane|bullet|disease|accident|someone|something) (?:would|will|could) (?:just )?(?:hit|kill|run over"
          r"|take) me\b"),
    dict(name="suicide.be_dead", category="suicide",
         pattern=r"\b(?:want|wish|wishing|would rather|prefer) (?:to )?(?:just )?be dead\b"
          r"|\bbetter off dead\b"
          r"|\bwish i (?:was|were|had been|could be|would be) (?:just )?dead\b"
          r"|\bwish i (?:would|had|was|were)? ?(?:have )?never (?:have )?(?:been )?born\b"
          r"|\bwish i did not exist\b"
          r"|\bbetter off (?:not (?:existing|alive|being here|being alive|born)|gone)\b"
          r"|\b(?:easier|better|simpler) (?:for (?:everyone|everybody|them|all) )?(?:to|if i) (?:just )?(?:not exist"
          r"|die|died|be dead|was dead|were dead|not be here|was not here|not be alive|stop existing|disappear forever"
          r"|was gone|were gone)\b"
          r"|\b(?:want|wish|need) to (?:just )?be gone(?! (?:by|before|from|for|on|at)\b)"
          r"|\bwant out of (?:this )?(?:life|world)\b"
          r"|\btake myself out\b(?! (?:to|for|on|of)\b)"
          r"|\bwish i could (?:just )?(?:die|disappear forever|stop existing|not exist|cease to exist"
          r"|fall asleep forever)"),
    dict(name="suicide.rather_die", category="suicide",
         pattern=r"\bwould rather (?:die|be dead)\b(?!\s+than\s+(?!(?:keep|go on|continue|carry on|live|living|be alive"
          r"|stay alive|wake up|spend another|face another|be here|exist)))"),
    dict(name="suicide.not_wake", category="suicide",
         pattern=r"\b(?:do not|did not|would not|will not|never|not|no longer) (?:want to |wish to |going to "
          r"|to )?wake up\b(?! (?:early|at|so early|before|for|in time|on time|until|rested|refreshed|feeling|tired"
          r"|with|on (?:weekends|sundays|saturdays)|every)\b)"
          r"|\b(?:want|wish|like|need) to (?:go to )?(?:sleep|fall asleep) (?:forever|and never (?:wake|come back))",
          neg=False),
    dict(name="suicide.not_alive", category="suicide",
         pattern=r"\b(?:do not|does not|no longer|not|never|can not|could not|will not|did not) (?:\w+ ){0,2}?(?:want|wish"
          r"|feel like|need|care|plan|intend) to (?:be alive|live|exist|keep living|keep existing|go on"
          r"|continue living|stay alive|carry on|be (?:here|around|alive) (?:anymore|any longer|tomorrow)"
          r"|be (?:here )?(?:on (?:this )?earth|in this world))\b(?! (?:with|in|at|near|there|here|on|through|without"
          r"|like that|alone|together|by|off|to|the|a|this|that|my|your|his|her|for|until|past|into|long enough)\b)",
          neg=False),
    dict(name="suicide.should_not_be_here", category="suicide",
         pattern=r"\bi (?:should|do|did) not (?:deserve to )?(?:be|have been) (?:here|alive|around|born)(?= *(?:$|[.,!?;]"
          r"|anymore|any longer|on this earth|in this world))",
          neg=False),
    dict(name="suicide.stop_existing", category="suicide",
         pattern=r"\b(?:want|wish|need|like|going|decided|ready|could|can|would) (?:to )?(?:just )?(?:stop (?:existing|living"
          r"|being alive|breathing|waking up)|not (?:exist|be alive|be here|live)|cease to exist|disappear (?:forever"
          r"|for good|permanently|and never come back)|vanish forever|no longer (?:exist|be alive|be here|live))\b"),
    dict(name="suicide.tired_of_life", category="suicide",
         pattern=r"\b(?:tired|sick|exhausted|done|finished) (?:of|with) (?:being alive|living|life|existing|this life"
          r"|breathing|being here)\b(?! (?:paycheck|in|with|like|on|at|here|there|under|alone|without)\b)"),
    dict(name="suicide.cant_go_on", category="suicide",
         pattern=r"\b(?:can not|could not|unable to|do not know how to) (?:\w+ )?(?:go on living|keep living|continue living"
          r"|live like this|live this way|do life|keep existing|carry on living|keep on living)\b"
          r"|\bcan not (?:go on|keep going)(?= *(?:$|[.,!?;]|anymore|any longer|like this))",
          neg=False),
    dict(name="suicide.no_reason", category="suicide",
         pattern=r"\b(?:no|any|zero|not a single|not one|what is the|the|is there a|is there any) (?:\w+ )?(?:reason|point"
          r"|purpose|use) (?:to|of|in|for) (?:me )?(?:keep |keeping |even |still )?(?:living|live|being alive|be alive"
          r"|go on|going on|stay alive|staying alive|existing|exist|carry on|carrying on)\b"
          r"|\bnothing (?:left )?to live for\b"
          r"|\bgive up on (?:life|living|being alive|existing|it all)\b"
          r"|\blife is (?:pointless|meaningless|worthless|not worth it)\b[^.!?]{0,50}\b(?:give up|end it|ready to go"
          r"|done with it)\b"
          r"|\b(?:no|lost (?:the|my|all)|lost any|losing (?:the|my)) (?:will|desire|motivation|reason|wish) to (?:live"
          r"|keep living|go on|be alive|stay alive|exist)\b"
          r"|\b(?:life|living) is not worth (?:living|it)\b"
          r"|\bnot worth living\b"
          r"|\bwhy (?:should|would|do|am) i (?:even |still |keep |bother |keep on )*(?:live|living|go on|going on"
          r"|stay alive|staying alive|be alive|alive|exist|existing)\b"
          r"|\b(?:suicide|death|dying|killing myself|ending it) (?:is|seems like|feels like|seems"
          r"|looks like) (?:the )?(?:only|best|easiest|last) (?:way out|option|answer|solution|choice|escape|way)\b"
          r"|\bno way out (?:except|but|other than) (?:dying|death|suicide|killing myself|ending it)",
          neg=False),
    dict(name="suicide.burden", category="suicide",
         pattern=r"\b(?:everyone|everybody|people|they|the world|world|my (?:\w+ )?(?:family|kids|children|parents|friends"
          r"|mom|dad|wife|husband|partner|boyfriend|girlfriend|son|daughter|sister|brother)|no one|nobody|it|things"
          r"|life|everything) (?:would|will|could|might) (?:\w+ ){0,2}?(?:be )?(?:better|happier|easier|fine|okay|ok"
          r"|relieved|glad|freer|lighter)(?: off)?(?: for (?:everyone|everybody|them|my \w+|all))? (?:without me"
          r"|if i (?:\w+ )?(?:was|were|am|had|did) (?:\w+ )?(?:dead|gone|not here|not around|never born|not alive)"
          r"|if i (?:\w+ )?(?:died|disappeared|killed myself|ended it|was gone|left this world|did not exist)"
          r"|with me gone|when i am gone|once i am gone)"
          r"|\b(?:no one|nobody|not a single person|none of them)(?: would| will)? (?:\w+ )?(?:miss me|notice|care|cry"
          r"|mourn)\b[^.!?]{0,25}\bif i (?:\w+ )?(?:died|was dead|were dead|was gone|were gone|disappeared"
          r"|killed myself|was not here|was not around|did not exist|stopped existing)"
          r"|\b(?:care|notice|matter)s? (?:if|whether) i (?:live|lived|am alive) or (?:die|died|am dead)\b",
          subj=False),
    dict(name="suicide.suicidal", category="suicide",
         pattern=r"\b(?:i am|i feel|i felt|feeling|i have been|i have|i get|i got|getting|been|makes me|making me|made me"
          r"|i keep|having|i still|i was|i started)(?: feeling| feel| getting| being| having| really| so| very| pretty"
          r"| extremely| kind of| a bit| a little| quite| super| honestly| lowkey| fucking)* suicidal\b"
          r"|\bmy suicidal (?:thoughts|feelings|urges|ideation)\b"),
    dict(name="suicide.suicidal_thoughts", category="suicide",
         pattern=r"\bsuicidal (?:thoughts|ideation|feelings|urges|thinking)\b",
          anchor=True),
    dict(name="suicide.thinking", category="suicide",
         pattern=r"\b(?:think|thinking|thought|thoughts|considering|consider|contemplating|contemplate|planning|dream"
          r"|dreaming|fantasi[sz]ing|obsessing|researching|googling|looking up|imagining|imagine|urges?)(?: about| of"
          r"| on)? (?:<GAP>){0,2}?(?:suicide|killing myself|ending my life|ending it(?: all)?|taking my (?:own )?life"
          r"|dying(?! (?:in|of|from|alone|young|before|my|her|his))|overdosing|an overdose|taking an overdose"
          r"|hanging myself|not existing|not being (?:here|alive|around)|disappearing forever|jumping(?= *(?:$|[.,!?;]"
          r"|off|from|in front|again|to my death))|(?:ways|how|methods) to (?:die|end it|end my life|kill myself"
          r"|commit suicide))\b"),
    dict(name="suicide.on_mind", category="suicide",
         pattern=r"\b(?:suicide|killing myself|ending (?:it|my life)|dying) (?:has |have |is |keeps |kept |has been "
          r"|is always |is constantly )?(?:<GAP>)?(?:crossed|crossing|crosses|been on|on|entered) my mind\b"
          r"|\bsuicide\b[^!?]{0,40}\b(?:that is|this is|it is|is) (?:what|all) i (?:am|keep|have been|can"
          r"|ever) (?:\w+ )?(?:thinking|think)"),
    dict(name="suicide.attempt", category="suicide",
         pattern=r"\b(?:attempted suicide|attempted to (?:kill myself|end my life|take my (?:own )?life)"
          r"|tried to (?:end my life|end it(?: all)?|commit suicide|take my (?:own )?life|overdose|die)|(?:made"
          r"|survived) (?:a |another |my )(?:suicide )?attempt|attempt (?:suicide|to kill myself)|(?:failed"
          r"|botched) (?:suicide )?attempt)\b"),
    dict(name="suicide.goodbye", category="suicide",
         pattern=r"\b(?:this is (?:my )?goodbye|this is my (?:last|final) (?:message|post|goodbye|night|day|words|text)"
          r"|(?:goodbye|bye|farewell) (?:forever|everyone|everybody|world|cruel world|all of you"
          r"|to everyone)(?![^.!?]{0,40}\b(?:see you|talk (?:to you )?(?:soon|later|tomorrow)|next (?:week|time)"
          r"|tomorrow|later|back soon))|my (?:suicide|goodbye) (?:note|letter|message|video)s?|(?:wrote|writing|write"
          r"|written|left|leaving|recorded|recording) (?:a |my |some )?(?:suicide|goodbye|farewell) (?:note|letter"
          r"|message|video)s?|(?:wrote|writing|write|written) (?:letters|notes) to (?:everyone|my (?:family|kids"
          r"|parents|friends))|by the time (?:you|anyone|someone|they|people|my \w+) (?:read|reads|see|sees|find|finds"
          r"|get|gets|hear|hears|receive|receives) this|this is the end for me|tonight is the night(?= *(?:$|[.,!?;]"
          r"|i (?:kill|end|die|do it|go)))|(?:giving|gave|give) away (?:all )?(?:of )?my (?:things|stuff|belongings"
          r"|possessions|pets)\b[^.!?]{0,40}\b(?:need|anymore|gone)|i am sorry for everything[.,!]* (?:goodbye|this is"
          r"|i love you|forgive me)|thank you for everything[.,!]* goodbye|(?:said|saying) (?:all )?my (?:last "
          r"|final )?goodbyes|i am (?:so )?sorry\b[^!?]{0,30}\bgoodbye(?: forever)?(?= *(?:$|[.!]))"
          r"|i love you all\b[^!?]{0,20}\bgoodbye|(?:this is )?the last time (?:you|anyone|anybody|you all) (?:will"
          r"|are going to) (?:hear from|see|talk to) me|(?:you|no one|nobody) will (?:not|never) (?:hear from"
          r"|see) me again|(?:giving|gave|give) (?:all )?(?:of )?my (?:things|stuff|belongings|possessions|pets) away"
          r"|tonight is it(?= *(?:$|[.!])))\b",
          neg=False,
          subj=False,
          guard=r"\b(?:on this account|new account|follow me|last day (?:of|at)|my (?:students|coworkers|colleagues"
                r"|team)|retir\w*|leaving (?:the|my|this) (?:job|company|school|team|group)|graduat\w*"
                r"|(?:letter|letters|note) to (?:my|our|the) (?:childhood |old |first )?(?:home|house|city|school|job"
                r"|team|students|flat|apartment)|to (?:open|read) (?:on|when|at|in)|birthdays?"
                r"|(?:song|album|book|film|movie|poem|track)s? (?:called|titled|named))\b"),
    dict(name="suicide.not_around", category="suicide",
         pattern=r"\b(?:not going to|will not|not) be (?:here|around|alive) (?:much longer|for (?:much )?long|tomorrow"
          r"|anymore|by (?:tomorrow|morning|the weekend|next week)|next (?:week|year)|after (?:tonight|today))"
          r"|\b(?:i will|i am going to) (?:already )?be (?:gone|dead) (?:soon|tonight|tomorrow|by)\b"
          r"|\bby the time\b[^.!?]{0,30}\bi will be gone\b"
          r"|\b(?:surprised|shocked|amazed) if i am (?:still )?(?:alive|here|around)\b"
          r"|\bif i am (?:still )?(?:alive|here|around) (?:next|by|in|tomorrow)\b[^.!?]{0,30}\b(?:surprised|shocked"
          r"|miracle)\b"
          r"|\b(?:do not|can not|never) see myself (?:being |staying )?(?:alive|here|around|living) (?:next|in|by|past"
          r"|much longer|for long|a year|tomorrow)",
          neg=False,
          guard=r"\b(?:visit\w*|trip|travel\w*|vacation|holiday|out of town|away|moving|flight|class|office"
                r"|meeting)\b"),
    dict(name="suicide.unsafe_self", category="suicide",
         pattern=r"\b(?:not|never) safe (?:from|with|around|by) myself"
          r"|\b(?:can not|could not|unable to|might not be able to|do not think i can|do not know if i can"
          r"|not sure i can|struggling to|hard to) keep myself safe"
          r"|\b(?:scared|afraid|terrified|worried) (?:of )?what i (?:might|will|could|am going to) do\b(?! to (?:him"
          r"|her|them|someone|my))"
          r"|\b(?:scared|afraid|terrified|worried) (?:that )?i (?:will|might|am going to|could) (?:actually "
          r"|finally )?(?:do it|go through with it|act on (?:it|them|these thoughts|my thoughts|the urges?))\b",
          neg=False),
    # means and methods, in the first person
    dict(name="suicide.jump", category="suicide",
         pattern=r"\b(?:jump|jumping|jumped|leap|leaping|throw(?:ing)? myself|hurl(?:ing)? myself) (?:off|from|in front of"
          r"|into|onto|out of|under|down) (?:(?:the|a|my|this|that|an|our|of|some) )*(?:\w+ )?(?:bridge|roof|rooftop"
          r"|building|balcony|cliff|ledge|window|tower|overpass|parking garage|car park|train|subway|bus|truck|traffic"
          r"|tracks|railway|highway|freeway|motorway|skyscraper|dam|platform|stairwell|(?:\d+(?:st|nd|rd|th)"
          r"|top) (?:floor|storey|story))\b",
          guard=_LEISURE),
    dict(name="suicide.jump_there", category="suicide",
         pattern=r"\b<INTENT> <ADV>(?:jump|jumping|leap|leaping|let go|letting go|fall|falling)\b(?! (?:in|into|on|at|rope"
          r"|the gun|to conclusions|ship|start|of (?:him|her|them|the past|my|it|this|that)|asleep|behind|apart|back"
          r"|for joy|around|up|over|through|the queue|the line|higher|right in|a hurdle)\b)",
          guard=_LEISURE,
          context=r"\b(?:roof|rooftop|bridge|balcony|ledge|tracks|building|edge|window|cliff|overpass|tower|train"
                  r"|subway|platform|parking garage)\b"),
    dict(name="suicide.traffic", category="suicide",
         pattern=r"\b(?:walk|walking|step|stepping|throw myself|throwing myself|run|running|jump|jumping) (?:out )?(?:into"
          r"|in front of) (?:(?:the|a|an|oncoming|some|moving) )*(?:traffic|train|bus|truck|lorry|car|subway"
          r"|tram)\b(?<!run into traffic)(?<!running into traffic)"
          r"|\b(?:lie|lay|lying|laying) down on (?:the )?(?:tracks|railway|road|highway)\b"),
    dict(name="suicide.drive", category="suicide",
         pattern=r"\bdriv(?:e|ing) (?:my car |the car |myself |it )?(?:into|off) (?:(?:a|the|an|oncoming) )*(?:tree|wall"
          r"|bridge|cliff|river|lake|traffic|truck|pole|barrier|overpass|ocean|sea)\b"
          r"|\bcrash(?:ing)? my car on purpose\b"),
    dict(name="suicide.overdose", category="suicide",
         pattern=r"\b<INTENT> <ADV>(?:overdos(?:e|ing)|tak(?:e|ing) an overdose|tak(?:e|ing) (?:all|every|the rest of"
          r"|the whole bottle of|a bottle of) (?:of )?(?:my |the |these |those )?(?:\w+ )?<PILLS>"
          r"|swallow(?:ing)? (?:all|every|a bottle|the whole bottle|a whole bottle)|drink(?:ing)? (?:bleach|antifreeze"
          r"|poison|rat poison|drain cleaner|weed killer))"),
    dict(name="suicide.overdose_them", category="suicide",
         pattern=r"\b<INTENT> <ADV>(?:tak(?:e|ing)|swallow(?:ing)?) (?:them|these|those|it) all\b"
          r"|\b<INTENT> <ADV>(?:tak(?:e|ing)|swallow(?:ing)?) all of (?:them|these|those|it)\b",
          context=r"\b<PILLS>\b"),
    dict(name="suicide.took_pills", category="suicide",
         pattern=r"\b(?:took|swallowed|taken|downed|chugged) (?:all|every|like [1-9]\d+|about [1-9]\d+|around [1-9]\d+"
          r"|over [1-9]\d+|[1-9]\d+|a (?:whole )?bottle|the whole bottle|my whole bottle|a (?:whole )?(?:bunch|handful"
          r"|lot|load|pack|packet|box)|the whole (?:pack|packet|box)|so many|too many|loads"
          r"|way too many)\b(?: of)?(?: my| the| those| these)?(?: \w+){0,2}? <PILLS>\b"),
    dict(name="suicide.on_purpose", category="suicide",
         pattern=r"\b(?:overdosed|took (?:\w+ ){0,4}?<PILLS>) (?:\w+ ){0,3}?(?:on purpose|deliberately|intentionally)\b"),
    dict(name="suicide.slit", category="suicide",
         pattern=r"\bslit(?:ting)? my (?:wrists?|throat|veins?)\b"),
    dict(name="suicide.means_ready", category="suicide",
         pattern=r"\b(?:gun|pistol|rifle|rope|noose|pills|blade|razor|knife|meds|tablets) (?:is |are )?(?:\w+ )?(?:loaded"
          r"|ready|in (?:my hands?|front of me)|next to me|beside me|on my (?:desk|bed|lap|table)|right here|tied up"
          r"|set up)\b(?! for (?:the|my|our) (?:trip|travel|week|vacation|morning|dinner))"
          r"|\b(?:for|until) when i am ready\b"
          r"|\bi am (?:standing |sitting )?on (?:the|a|this) (?:edge|ledge)\b"
          r"|\bi am (?:standing |sitting |climbing )?(?:at|on|onto) (?:the )?(?:edge|ledge|top|railing) of (?:the|a|my"
          r"|this) (?:\w+ )?(?:roof|bridge|building|cliff|balcony|parking garage|tower|overpass)\b",
          context=r"\b(?:gun|pistol|rifle|rope|noose|pills|blade|razor|knife|meds|tablets|edge|ledge|roof|bridge)\b"),
    dict(name="suicide.stockpile", category="suicide",
         pattern=r"\b(?:saving|saved|save|stockpil\w+|hoard\w*|collect(?:ing|ed)|stash\w*) (?:up )?(?:all )?(?:my |the "
          r"|all my |all the |enough |some )?(?:\w+ )?(?:pills|meds|medication|tablets|painkillers|prescriptions?)\b"),
    dict(name="suicide.stock_bought", category="suicide",
         pattern=r"\b(?:bought|got|buying|ordered|have) (?:a (?:bunch|lot|load|few boxes|few bottles)|loads|lots"
          r"|several (?:bottles|boxes|packs)|[1-9]\d+|enough|extra) (?:of )?(?:\w+ )?<PILLS>\b",
          context=r"\b(?:tonight|all at once|at once|all of them|them all|end it|die|going to take them"
                  r"|take them (?:all|tonight))\b"),
    dict(name="suicide.bought_means", category="suicide",
         pattern=r"\b(?:bought|got|buying|getting|purchased|ordered) (?:a |the |some )?(?:rope|gun|pistol|noose|razor blades"
          r"|helium|charcoal)\b[^!?]{0,60}(?:know what i am going to do|to (?:kill|end|use on myself|do it"
          r"|hang(?! (?:a|an|the|some|up|my|our|out|it|them|pictures?|curtains?|clothes|laundry|lights?"
          r"|hammocks?)\b))"
          r"|for myself|it is (?:time|over)|i am done|this is it|goodbye)"),
    dict(name="suicide.noose", category="suicide",
         pattern=r"\b(?:tie|tied|tying|make|made|making|bought|buy|have|set up|setting up) (?:a |the |my |up a )?noose\b",
          subj=False),
    dict(name="suicide.gas", category="suicide",
         pattern=r"\b(?:engine|car) (?:is )?running in (?:the |a |my )?(?:closed |locked |shut )?garage\b"
          r"|\b(?:charcoal|carbon monoxide|exhaust) (?:in|into|to) (?:my|the) (?:room|car|tent)\b"
          r"|\bhelium (?:tank|bag|hood)\b"),
    dict(name="suicide.plan", category="suicide",
         pattern=r"\b(?:my plan is to|i have a plan to|i made a plan to|i have planned (?:out )?how to) (?:\w+ ){0,3}?(?:die"
          r"|kill|end|jump|overdose|hang|drown|shoot myself|crash|drive)\b"
          r"|\bplan(?:ning|ned)? (?:out )?my (?:own )?(?:death|suicide)\b"),
    dict(name="suicide.plan_euphemism", category="suicide",
         pattern=r"\bi (?:have|made|have made|have got) (?:a|my) plan\b"
          r"|\b(?:it is|its) time for me to (?:go|leave this world|leave for good)(?= *(?:$|[.,!?;]|for good|forever))"
          r"|\b(?:and|to|then) end (?:it|things|my life)(?= *(?:$|[.,!?;]|tonight|today|now|for good|forever))",
          context=r"\b(?:(?:doing|do) it (?:on|this|tonight|tomorrow|soon|next|before|after)|burden|tired of|no point"
                  r"|pointless|goodbye|suicid\w*|die|dead|<WEAPON>|<PILLS>|rope|bridge|roof)\b"),
    dict(name="suicide.insurance", category="suicide",
         pattern=r"\bmy (?:life )?insurance\b[^.!?]{0,40}\b(?:suicide|if i die|when i die|if i kill myself)\b"),
    dict(name="suicide.research", category="suicide",
         pattern=r"\b(?:looked up|looking up|look up|googled|googling|researched|researching|searching|searched"
          r"|checked) (?:how (?:high|tall|far down|deep)|the height of) (?:the |a |that |this )?(?:\w+ )?(?:bridge"
          r"|building|cliff|roof|tower|overpass|balcony|drop|parking garage)\b"),
    # method-seeking questions
    dict(name="suicide.lethal_dose", category="suicide",
         pattern=r"\b(?:lethal|fatal|deadly|toxic|killing|overdose) (?:dose|doses|amount|quantity|level)\b"
          r"|\bhow (?:many|much)\b[^.?!]{0,40}?\b(?:to|would|will|does|do|is|until|before|can"
          r"|could)\b[^.?!]{0,25}?\b(?:kill|kills|killed|die|dies|lethal|fatal|overdose|od|end it)\b"
          r"|\bhow many (?:of )?(?:my |the |these |those )?(?:\w+ ){0,2}?<PILLS>(?: \w+){0,3}? (?:would|will|does"
          r"|should|it would|it will|does it) (?:it )?take\b"
          r"|\b(?:dose|doses|amount|number|quantity)\b[^.?!]{0,40}\b(?:fatal|lethal|deadly|kill me|to die"
          r"|enough to kill|not wake up|stop my heart)\b",
          **_QUESTION),
    dict(name="suicide.best_way", category="suicide",
         pattern=r"\b(?:most |least |the )?(?:painless|quickest|quick|fastest|fast|easiest|easy|best|surest|sure|simplest"
          r"|reliable|most reliable|least painful|effective|most effective|peaceful|cleanest|guaranteed|successful"
          r"|efficient|cheapest)\w* (?:way|ways|method|methods|means) (?:to|of|for) (?:die|dying|kill (?:myself"
          r"|yourself|oneself|me|themselves)|killing (?:myself|yourself|oneself)|commit(?:ting)? suicide|suicide"
          r"|end (?:my|your|one s|ones|a) life|ending (?:my|your) life|end it(?! with)|overdose|od|hang (?:myself"
          r"|yourself)|go(?= *(?:$|[.,!?;])))\b",
          **_QUESTION),
    dict(name="suicide.how_to", category="suicide",
         pattern=r"\bhow (?:to|do i|can i|do you|would i|could i|should i|does one|do people|would you|can you|would someone"
          r"|can someone|to best|might i)\b (?:\w+ )?(?:kill (?:myself|yourself|oneself)|commit suicide|end (?:my|your"
          r"|one s) (?:own )?life|tie a noose|make a noose|hang (?:myself|yourself)|overdose|od|slit (?:my"
          r"|your) (?:wrists?|throat)|bleed out|die (?:painlessly|quickly|fast|without pain|in my sleep|peacefully"
          r"|without (?:it )?hurting))\b",
          **_QUESTION),
    dict(name="suicide.how_long", category="suicide",
         pattern=r"\bhow long (?:does it|would it|will it|until|before|to|do you|does someone|can you|can someone|will i"
          r"|would i)\b (?:\w+ ){0,4}?(?:bleed out|die|drown|suffocate)\b(?! of (?:boredom|laughter|old age))",
          **_QUESTION),
    dict(name="suicide.high_enough", category="suicide",
         pattern=r"\b(?:high|tall|far|deep|fast)(?: enough)? (?:to (?:die|kill (?:me|you|myself|someone|a person))|(?:does|do"
          r"|would|must|should|has|have) (?:a |an |the )?(?:\w+ ){0,3}(?:be|need to be|have to be|fall) (?:to"
          r"|for (?:me|you|someone) to) (?:die|kill))\b",
          **_QUESTION),
    dict(name="suicide.will_it_kill", category="suicide",
         pattern=r"\b(?:can|could|will|would|does|do|is|are|might) (?:[1-9]\d*|a bottle of|a handful of|all|these|this many"
          r"|that many|this much|that much|the whole|a whole|ten|twenty|fifty|a hundred) (?:\w+ ){0,4}(?:kill me"
          r"|be lethal|be fatal|be enough to (?:kill|die)|make me die|stop my heart)\b"
          r"|\b(?:can|could|will|would|might) i (?:die|overdose) (?:from|if i|by|after) (?:taking |swallowing "
          r"|drinking |eating |mixing )?(?:[1-9]\d*|all|a bottle|too many|my|these|this many|the whole)\b"
          r"|\bif i (?:took|take|swallowed|swallow|drank|drink|ate|eat|mixed|mix) (?:all|every|my whole|a whole"
          r"|the whole|[1-9]\d+|a bottle|a handful|too many|the rest)\b"
          r"|\b(?:would|will|is|does|do|are) (?:overdosing|overdose|an overdose|hanging|drowning|jumping|bleeding out"
          r"|slitting|suffocating|shooting yourself|gassing)\b(?: \w+){0,5}? (?:be )?(?:painless|hurt|painful|quick"
          r"|fast|work|lethal|fatal|peaceful)\b"
          r"|\b(?:what|which) (?:\w+ ){0,3}?(?:chemicals?|gas|gases|poisons?|pills?|drugs?|medications?|meds|plants?"
          r"|substances?)(?: \w+){0,2}? (?:can|will|would|could) kill (?:you|me|a person|someone|a human|people)\b"
          r"|\b(?:cut|slit|jump|shoot|hang|drown|overdose|take|mix|mixing|drink|stab|inject|swallow"
          r"|inhale)\b[^.?!]{0,40}\b(?:to|and) die\b(?! (?:of|laughing|for|happy|old|trying))"
          r"|\b(?:cut|slit|slice)\b[^.?!]{0,40}\b(?:an? )?(?:artery|arteries|vein|veins|jugular)\b",
          **_QUESTION),
    # -- self-harm ----------------------------------------------------------------------------------
    dict(name="self_harm.self_injury", category="self_harm",
         pattern=r"\b(?:cut|cutting|cuts|slic(?:e|ing|ed)|burn|burning|burned|burnt|scratch|scratching|scratched|hit|hitting"
          r"|punch|punching|punched|bruis(?:e|ing|ed)|starv(?:e|ing|ed)|carv(?:e|ing|ed)|scar|scarring|scarred|hurt"
          r"|hurting|harm|harming|harmed|injur(?:e|ing|ed)|punish|punishing|punished|bite|biting|pinch|pinching|beat"
          r"|beating|bang|banging|mutilat(?:e|ing)|whip|whipping|poke|poking|bleed|bleeding) myself\b(?! (?:up|out"
          r"|over it|laughing|trying)\b)",
          guard=_ACCIDENT),
    dict(name="self_harm.term", category="self_harm",
         pattern=r"\bself (?:harm(?:ing|ed|er|s)?|injur(?:y|ing|ed|e)|mutilat(?:ion|ing|e))\b(?! (?:recovery|awareness"
          r"|prevention|research|support|services|charity|charities|resources)\b)",
          anchor=True),
    dict(name="self_harm.cutting", category="self_harm",
         pattern=r"\b(?:been|started|start|keep|kept|am|i|resort to|resorted to|urges? to|want to|wanting to|need to"
          r"|go back to|went back to|back to) cutting\b(?= *(?:$|[.,!?;]|again|myself|my <BODY>|since"
          r"|for (?:\w+ )?(?:days|weeks|months|years|a while|so long)|to (?:cope|feel|deal|numb|punish|release)|when"
          r"|whenever|every|because|but|so|is|helps|makes|right now|tonight|lately|recently|in secret|in the bathroom"
          r"|on my))"
          r"|(?:^|[.!?;,] )cutting (?=is|helps|makes|was the only|feels)",
          guard=_ACCIDENT),
    dict(name="self_harm.cut", category="self_harm",
         pattern=r"\bi (?:<GAP>){0,3}?cut\b(?= *(?:$|[.,!?;]|again|last night|tonight|today|yesterday|right now|so bad|deeper"
          r"|too deep|myself|my <BODY>|on (?:my|purpose)|until|when|whenever|every))",
          guard=_ACCIDENT),
    dict(name="self_harm.cuts", category="self_harm",
         pattern=r"\b(?:my|fresh|new|hide (?:my|the)) cuts\b"
          r"|\bhide (?:my|the) (?:scars|wounds)\b"
          r"|\bcut (?:too deep|deeper)\b"
          r"|\bcuts (?:are|were) (?:getting )?(?:deeper|worse|bleeding|infected)"),
    dict(name="self_harm.on_purpose", category="self_harm",
         pattern=r"\b(?:burn|burned|burning|burnt|cut|cutting|hit|hitting|hurt|hurting|scratch|scratching|scratched|pick"
          r"|picking|picked|bite|biting|starv\w*|bruis\w*|punch\w*|bang\w*|reopen\w*) (?:at )?(?:myself"
          r"|my (?:own )?\w+)(?: \w+){0,4}? (?:on purpose|deliberately|intentionally)\b"),
    dict(name="self_harm.on_purpose_any", category="self_harm",
         pattern=r"\b(?:burn|cut|hit|hurt|scratch|pick|bite|starv|bruis|punch|bang|slam|smash|break|broke"
          r"|reopen)\w* (?=(?:\w+ ){0,5}?(?:my|myself)\b)(?:\w+ ){0,7}?(?:on purpose|deliberately|intentionally)\b"),
    dict(name="self_harm.body", category="self_harm",
         pattern=r"\b(?:cut|cutting|burn|burning|burned|scratch|scratching|carv\w*|slic\w*|stab\w*|scar\w*|bruis\w*"
          r"|punch\w*) (?:(?!(?:in|inside|through|throughout|all)\b)\w+ ){0,2}?(?:into |on )?my (?:own )?<BODY>\b",
          guard=_ACCIDENT),
    dict(name="self_harm.bleed", category="self_harm",
         pattern=r"\buntil (?:it|they|i|my \w+|the skin|skin) (?:bleeds?|bled|bruises?|bruised|breaks?|broke|cracked"
          r"|scars?)\b"
          r"|\b(?:make|see|watch|want to see) myself bleed\b"
          r"|\bwant to (?:see blood|bleed)\b"
          r"|\b(?:bang|hit|slam|smash)\w* my head (?:against|on|into) (?:the |a )?(?:wall|floor|desk)\b",
          guard=_ACCIDENT),
    dict(name="self_harm.blade", category="self_harm",
         pattern=r"\b(?:blade|razor|knife|lighter|cigarette)s? (?:on|against|into|across|to) my (?:own )?<BODY>\b"),
    dict(name="self_harm.use_on_self", category="self_harm",
         pattern=r"\buse (?:it|this|that|them|the \w+|a \w+|my \w+) on myself\b"),
    dict(name="self_harm.break_bone", category="self_harm",
         pattern=r"\b<INTENT> <ADV>(?:break|breaking|snap|snapping) (?:my|my own) (?:arm|leg|wrist|fingers?|bones?|hand|ankle"
          r"|nose|ribs?)\b"),
    dict(name="self_harm.deserve_pain", category="self_harm",
         pattern=r"\bi (?:<GAP>){0,2}?deserve (?:to (?:feel |be in )?(?:pain|suffer|bleed|hurt|be hurt|be punished)|pain)\b"),
    dict(name="self_harm.urge", category="self_harm",
         pattern=r"\b(?:urges?|need|craving|itch|temptation) to (?:cut(?= *(?:$|[.,!?;]|again|myself|my <BODY>|so bad"
          r"|right now|tonight))|self harm|hurt myself|burn myself)\b"),
    # -- harm to others -------------------------------------------------------------------------------
    dict(name="harm_to_others.violence", category="harm_to_others",
         pattern=r"\b(?:<INTENT>|i will|i would|i could|i might) <ADV>(?:snap and |lose it and |lose control and "
          r"|end up )?(?:kill|killing|murder|murdering|stab|stabbing|shoot|shooting|strangle|strangling|choke|choking"
          r"|poison|poisoning|hurt|hurting|harm|harming|attack|attacking|beat|beating|punch|punching|smother"
          r"|smothering|drown|drowning|torture|torturing|slaughter|maim|bomb|bombing|blow up|blowing up|shoot up"
          r"|shooting up|suffocate|bash|rape|molest|assault|massacre|run over) (?:<TARGET>|the place)\b(?! (?:at"
          r"|in) (?:chess|a game|games|cards|tennis|the game|\w+ball|poker|an argument|a race|arm wrestling|scrabble"
          r"|monopoly)\b)",
          guard=_JOKE),
    dict(name="harm_to_others.destroy", category="harm_to_others",
         pattern=r"\b<INTENT> <ADV>(?:burn|burning|set fire to|torch) (?:down )?(?:<TARGET>|(?:my|the|his|her"
          r"|their) (?:\w+ )?(?:house|home|car|apartment))\b"
          r"|\brun (?:<TARGET>) over\b"
          r"|\b<INTENT> <ADV>(?:push|pushing|shove|shoving|throw|throwing) <TARGET> (?:down|off|in front of|out of)\b",
          guard=_JOKE),
    dict(name="harm_to_others.want_dead", category="harm_to_others",
         pattern=r"\b(?:want|wish|need) (?:<TARGET>) (?:dead|to die)\b"
          r"|\bwish (?:<TARGET>) (?:was|were) dead\b"
          r"|\b<INTENT> <ADV>(?:shake|shaking|smother|smothering) (?:my|the|our) (?:\w+ )?(?:baby|infant|newborn"
          r"|toddler)\b",
          guard=_JOKE),
    dict(name="harm_to_others.make_suffer", category="harm_to_others",
         pattern=r"\bmake (?:him|her|them|(?:my|the) (?:\w+ )?<PERSON>)(?: all)? (?:bleed|suffer)\b",
          guard=_JOKE),
    dict(name="harm_to_others.weapon", category="harm_to_others",
         pattern=r"\b(?:bring|bringing|brought|take|taking|took|carry|carrying|sneak|sneaking) (?:a |my |the |\w+s "
          r"|my \w+s )?<WEAPON> (?:to|into) (?:school|work|class|the office|church|the party|the mall|the concert"
          r"|campus|the game)\b"
          r"|\b(?:make (?:\w+ ){0,2}(?:pay|regret it)|get (?:back at|revenge on|even with)|revenge)\b"
          r"|\bknow where (?:\w+ ){0,3}keeps? (?:his|her|their|the|a) <WEAPON>"
          r"|\buse (?:it|this|that|the \w+|my \w+) on <TARGET>\b",
          guard=_JOKE,
          context=r"\b<WEAPON>\b"),
    # -- abuse or danger (someone else is the subject, so no subject guard) ---------------------------
    dict(name="abuse.violence", category="abuse_or_danger",
         pattern=r"\b<ABUSER> (?:<GAP>){0,3}?(?:hits|hit|hitting|beats|beat|beating|beaten|punches|punched|punching|kicks"
          r"|kicked|kicking|slaps|slapped|slapping|chokes|choked|choking|strangles|strangled|strangling|pushes|pushed"
          r"|shoves|shoved|burns|burned|burnt|whips|whipped|stabbed|attacked|attacks|assaulted|assaults|raped|rapes"
          r"|molested|molests|abuses|abused|abusing|tortures|tortured|drugged|threatens|threatened|threatening|stalks"
          r"|stalked|stalking|locks|locked|smacks|smacked|throws things at|threw things at|throwing things at|spits on"
          r"|spat on|keeps hurting|hurts|is hurting) me\b"
          r"|\b<ABUSER> (?:<GAP>){0,2}?(?:threw|throws|slammed|slams|dragged|drags|grabbed|grabs|pinned"
          r"|pins) me (?:against|into|down|across|on|by the (?:throat|neck|hair))\b"
          r"|\b<ABUSER> (?:<GAP>){0,2}?pulled (?:a|his|her) (?:knife|gun) on me\b"
          r"|\b(?:spiked my drink|put something in my drink)\b",
          subj=False,
          guard=r"\b(?:hits? me (?:up|back)|beat me (?:at|in)|(?:with|during) (?:a |the |our )?(?:pillow|snowball|nerf"
                r"|water balloon|tickle)|playful\w*|joking|by accident|accidentally|kick\w* me out|push\w* me (?:away"
                r"|to (?:the point|do|be|work|try|go)|into \w+ing|too hard|harder)|threaten\w* me (?:that|with (?!(?:a"
                r"|his|her|their|the) <WEAPON>)|to (?!(?:kill|hurt|shoot|stab|beat|harm|burn|rape)\b))"
                r"|hurts? me (?:emotionally|when (?:he|she|they) (?:ignores|says|lies|leaves|talks|forgets))"
                r"|hurts? my feelings)\b"),
    dict(name="abuse.touch", category="abuse_or_danger",
         pattern=r"\b<ABUSER> (?:\w+ ){0,2}?(?:touches|touched|touching|grabs|grabbed|gropes|groped|groping|fondled|fondles"
          r"|undresses|films|filmed) me (?:inappropriately|when|there|down there|in (?:my|places|private)|at night"
          r"|under|where|without|against|even though)"
          r"|\b(?:touched|groped|fondled) me inappropriately",
          subj=False),
    dict(name="abuse.bed", category="abuse_or_danger",
         pattern=r"\b<ABUSER> (?:<GAP>){0,2}?(?:comes|coming|came|gets|getting|got|climbs|climbing|sneaks|sneaking) (?:into"
          r"|in) (?:my )?(?:bed|bedroom)\b",
          subj=False,
          guard=r"\bmy (?:\w+ )?(?:toddler|son|daughter|kids?|child|baby|little|partner|husband|wife|boyfriend"
                r"|girlfriend|dog|cat|puppy)\b"),
    dict(name="abuse.touch_context", category="abuse_or_danger",
         pattern=r"\b(?:touches|touched|touching|gropes|groped|fondles|fondled) me\b",
          subj=False,
          context=r"\b(?:at night|my (?:bed|room|bedroom)|private|inappropriate\w*|secret|do not tell|under my"
                  r"|when (?:my|no one|nobody))\b"),
    dict(name="abuse.assaulted", category="abuse_or_danger",
         pattern=r"\b(?:i was|i got|i am being|i have been|i was being|i am getting|i keep getting) (?:<GAP>){0,2}?(?:raped"
          r"|molested|sexually (?:assaulted|abused)|assaulted|abused|beaten(?: up)?|attacked|trafficked|kidnapped"
          r"|drugged|groomed|stalked|strangled|choked|followed|mugged|stabbed|shot|threatened|blackmailed|held hostage"
          r"|held captive)\b(?<!feel like i am being attacked)(?! (?:at|in) (?:chess|a game|games|cards|tennis|\w+ball"
          r"|poker|a race|monopoly|fifa|scrabble)\b|(?: on| by) (?:instagram|twitter|tiktok|social media|a ball)\b"
          r"| down\b)"),
    dict(name="abuse.forced", category="abuse_or_danger",
         pattern=r"\bforc(?:e|es|ed|ing) me (?:to (?:have sex|do (?:sexual|sex)|sleep with|touch|watch porn|take drugs"
          r"|work for (?:free|nothing|no money)|sell)|into (?:sex|prostitution|sex work))"
          r"|\b(?:made|makes|making) me (?:have sex|do sexual)"
          r"|\bforced (?:himself|herself|themselves) on me\b",
          subj=False),
    dict(name="abuse.exploited", category="abuse_or_danger",
         pattern=r"\b(?:sending|sends|sent|keeps sending) me (?:sexual|nude|naked|explicit|dirty|sexy) (?:messages|pictures"
          r"|photos|pics|texts|videos)\b"
          r"|\b(?:asking|asks|asked|wants|pressuring|pressures|pressured|making|made) me (?:for|to send"
          r"|to take) (?:nudes|naked (?:pictures|photos|pics)|sexual (?:pictures|photos|pics))\b"
          r"|\b(?:blackmail\w*|threaten\w*) (?:me )?(?:with|to (?:share|post|leak|send)) (?:my )?(?:nudes|photos"
          r"|pictures|pics|videos)\b",
          subj=False,
          context=r"\b(?:i am (?:only )?(?:\d|1[0-7]|eleven|twelve|thirteen|fourteen|fifteen|sixteen|seventeen)\b"
                  r"|my (?:teacher|coach|uncle|stepdad|stepfather|tutor|pastor|boss)|an adult|older (?:man|guy|woman)"
                  r"|wants to meet|do not want|did not ask|pressur\w*|uncomfortable|threaten\w*|blackmail\w*|scared)"),
    dict(name="abuse.threat", category="abuse_or_danger",
         pattern=r"\bthreaten(?:s|ed|ing)? (?:to )?(?:kill|hurt|shoot|stab|beat|harm|burn|rape|take the kids|end) (?:me|us"
          r"|my)\b"
          r"|\b(?:said|says|told me|tells me|keeps saying|swore|swears|threatened|warned me)\b[^.!?]{0,60}?\b(?:he|she"
          r"|they) (?:will|would|is going to|was going to|is gonna) (?:kill|hurt|shoot|stab|beat|burn|rape|use it on"
          r"|end) (?:me|us|the kids|the children|the baby|(?:my|our) (?:\w+ )?(?:kids|children|baby|son|daughter"
          r"|family|mom|dad|sister|brother|dog|cat|pets?))\b"
          r"|\b(?:he|she|they) (?:will|would|is going to|is gonna) kill (?:himself|herself|themselves) if i (?:leave"
          r"|go|break up|do not|tell|call)\b"
          r"|\b(?:scared|afraid|terrified|frightened|worried|fear|think) (?:that )?(?:he|she|they"
          r"|my (?:\w+ ){0,2}?<PERSON>) (?:is going to|will|might|would|is gonna|wants to|is trying to|could"
          r"|is about to) (?:kill|hurt|shoot|stab|beat|rape|strangle|choke|harm|attack) (?:me|us)\b"
          r"|\b(?:he|she|they) (?:has|have|had) (?:a|the|his|her) (?:gun|knife|weapon|rifle"
          r"|pistol)\b[^!?]{0,40}\b(?:me|us)\b",
          subj=False,
          guard=r"\bif i (?:broke|break|eat|ate|forget|forgot|lose|lost|fail|failed|miss|missed|am late|was late|skip"
                r"|skipped|spill|spilled|crash|crashed|dent|dented|borrow|borrowed|do not clean)\b"
                r"|\b(?:lol|lmao|haha\w*|late|grades?|curfew|homework|chores|dishes|my room|report card)\b"),
    dict(name="abuse.unsafe", category="abuse_or_danger",
         pattern=r"\b(?:scared|afraid|fear|fearing|terrified|worried) for my (?:life|safety)\b"
          r"|\bi am in (?:immediate |real |serious )?danger\b(?! of)"
          r"|\bi am not safe(?= *(?:$|[.,!?;]|at home|here|with|around|anymore|right now|in (?:my|this"
          r"|the) (?:own )?(?:house|home|relationship|room)|near))"
          r"|\bi (?:do not|no longer|never) feel safe(?= *(?:$|[.,!?;]|at home|here|with|around|anymore|right now"
          r"|in (?:my|this|the) (?:own )?(?:house|home|relationship|room)|near))"
          r"|\b(?:afraid|scared|terrified) (?:to (?:go home|be at home|sleep at home|go back home)|of going home"
          r"|to (?:leave|stay)(?= *(?:$|[.,!?;]|him|her|them|because|with|the house|home)))\b"
          r"|\b(?:held|kept|locked up) against my will"
          r"|\bheld (?:hostage|captive)\b"
          r"|\b(?:will not|does not|do not|never) let me (?:leave|out|go)(?= *(?:$|[.,!?;]|the house|the room|my room"
          r"|the apartment|home|of the|out))"
          r"|\b(?:he|she|they|my \w+) (?:is |are )?(?:getting|being|gets) (?:really |very |more )?violent\b"
          r"|\btrapped (?:in|inside) (?:the |my |a |this )?(?:house|room|car|apartment|basement|home)\b"
          r"|\btrapped with (?:him|her|them|my)\b"
          r"|\b(?:i am|i have been|i was) (?:being )?(?:locked|trapped|tied up|chained) (?:in|inside|up)\b",
          subj=False),
    dict(name="abuse.intruder", category="abuse_or_danger",
         pattern=r"\b(?:someone|somebody|a (?:man|guy|stranger|person|woman)|there is (?:a|some) (?:man|guy|person|stranger"
          r"|one)|there are (?:people|men)|this (?:man|guy)) (?:is |are )?(?:<GAP>){0,2}?(?:outside|at|by"
          r"|near) my (?:window|bedroom|room)\b"
          r"|\b(?:someone|somebody|a (?:man|guy|stranger|person|woman)|he|she|they|people|my ex|there is (?:a"
          r"|some) (?:man|guy|person|stranger|one)) (?:is |are )?(?:<GAP>){0,2}?(?:following me|stalking me"
          r"|breaking in|breaking into (?:my|our)|trying to (?:get in|break in|get into|break into|open my door"
          r"|kill me|hurt me)|broke into (?:my|our) (?:house|home|apartment|room|car))\b"
          r"|\b(?:someone|somebody|a stranger) (?:is )?in my (?:house|home|apartment|room)\b"
          r"|\b<ABUSER> (?:is |are )?(?:outside|at|in|by) my (?:\w+ )?(?:door|room|house|window|home|apartment"
          r"|car) with (?:a|his|her|their|the) <WEAPON>"
          r"|\b<ABUSER> (?:has|is holding|is waving|pointed|is pointing) (?:a|his|her|their|the) <WEAPON> at me\b"
          r"|\b(?:my ex|he|she|they|someone|somebody|a (?:man|guy|stranger)) (?:<GAP>){0,2}?(?:showing up|shows up"
          r"|showed up|hanging around|lurking) (?:\w+ ){0,2}?(?:outside|at|near) my (?:house|home|door|window|work"
          r"|apartment|school|job)\b",
          subj=False,
          guard=r"\b(?:instagram|twitter|tiktok|online|on social|youtube|twitch|spotify)\b"),
)


# -- screening generated text: instructions or encouragement, never support -----------------------
SUPPORTIVE_PREFIX = (r"\b(?:if|when|feel|feeling|felt|want|wanting|wish|thoughts?|urges?|thinking|think|like"
                                r"|never|not|no|whether|tempted|considering|instead of|rather than|before you)\b")
SUICIDE_CONTEXT = r"\b(?:kill|suicid\w*|die|dying|death|end it|end your life|overdose|pills|jump|hang|noose|cut)\b"

OUTPUT_RULES: tuple[tuple[str, ...], ...] = (  # (name, category, pattern[, context needed elsewhere])
    ("encourage_euphemism", "suicide", r"\b(?:you should|you could|you need to|you have to|you must|you might"
     r" as well|just|go ahead and|why not|why do not you|you ought to|it is time to) <ADV>(?:jump(?= *(?:$|[.,!?;]"
     r"|off|from|in front))|do it(?= *(?:$|[.,!?;]|tonight|now)))", SUICIDE_CONTEXT),
    ("encourage", "suicide", r"\b(?:you should|you could|you need to|you have to|you must|you might as well"
     r"|you may as well|just|go ahead and|why not|why do not you|you ought to|it is time to|it is time for you to"
     r"|the (?:answer|solution) is to|the only way out is to) <ADV>(?:kill yourself|end (?:it|it all|your life"
     r"|yourself|things)(?! with)|take your (?:own )?life|die\b|commit suicide|hang yourself|overdose)"),
    ("encourage_self_harm", "self_harm", r"\b(?:you should|you could|you need to|you have to|you must|you might"
     r" as well|just|go ahead and|why not|why do not you|you ought to|it is okay to|it is fine to) <ADV>(?:cut"
     r" (?:yourself|deeper|your (?:wrists?|arms?|legs?|thighs?|skin))|hurt yourself|harm yourself"
     r"|starve yourself|burn yourself|punish yourself)\b"),
    ("worthless", "suicide", r"\b(?:you are|you would be|you will be) (?:\w+ )?better off dead\b"
     r"|\b(?:no one|nobody) (?:would|will) (?:even )?(?:miss|notice|care about) you\b"
     r"|\b(?:the world|everyone|everybody|your family|they) (?:would|will) (?:\w+ )?be better (?:off )?without"
     r" you\b|\byou are (?:just )?a burden\b"
     r"|\byou deserve to (?:die|suffer|be hurt|feel pain|bleed)\b|\b(?:go )?kill yourself\b"),
    ("pills", "suicide", r"\b(?:take|taking|swallow|swallowing) (?:all|every|the whole bottle of|a whole bottle of"
     r"|as many|enough|the rest of) (?:of )?(?:the |your |those |these )?(?:\w+ )?<PILLS>"),
    ("cut", "self_harm", r"\bcut (?:deeper|harder|along the|vertically|down the)\b|\bdeeper cuts?\b|\bcut (?:your"
     r"|the) (?:wrists?|arms?|veins?|artery|arteries|thighs?)\b"),
    ("lethal_dose", "suicide", r"\b(?:lethal|fatal|deadly|toxic) (?:dose|amount|quantity)\b[^.]{0,60}\b(?:is|are|of"
     r"|would be|about|around|roughly|approximately)\b[^.]{0,30}\d|\b\d+ ?(?:mg|milligrams|g|grams|pills|tablets"
     r"|units|ml|capsules)\b[^.]{0,40}\b(?:lethal|fatal|kill you|enough to die|would kill|will kill|is deadly"
     r"|enough to kill)"),
    ("method", "suicide", r"\b(?:the )?(?:best|easiest|quickest|fastest|most painless|surest|most effective"
     r"|least painful|painless|simplest|most reliable) (?:way|method|ways|methods) to (?:kill yourself|die"
     r"|commit suicide|end your life|end it|hang yourself|overdose)\b[^.]{0,20}\b(?:is|are|would be|involves"
     r"|includes)\b|\b(?:here is|here are|these are|follow these) (?:how|the steps|steps|ways|some ways"
     r"|methods) (?:to )?(?:kill yourself|die|commit suicide|end your life|hang yourself|overdose)"
     r"|\bsteps? to (?:kill yourself|commit suicide|end your life)\b|\btie (?:a|the) noose\b|\bnoose (?:around"
     r"|over|to)\b|\bhang yourself (?:from|with|using|by)\b|\bjump (?:from|off) (?:a|the) (?:\w+ )?(?:building"
     r"|bridge|roof|cliff)\b[^.]{0,30}\b(?:high|at least|feet|meters|stories|floors)\b"),
)


# -- guards: wording that explains a match away (compiled by rules.py) ---------------------------------------------------------------------------------------
NEGATOR = (r"\b(?:not|never|no|without|zero|nor|none|stopped|quit)\b")
NOT_NEGATING = (r"\b(?:not going to lie|not gonna lie|can not stop|could not stop|can not help|not sure"
                           r"|do not know|not okay|not ok|not fine|not kidding|not joking|not even|reason not to"
                           r"|why not"
                           r"|can not take|can not handle|can not cope|can not sleep|can not breathe|no one|nobody"
                           r"|no matter|no idea|not anymore)\b")
ASKED = (r"\b(?:asked|asks|ask|asking|wonder|wondering|wondered|questioned)"
                    r" (?:me |us |you |him |her |them )?(?:if|whether)\b")  # "asked me if i ever thought about it"
CLAUSE = (r"[.!?;,:\n\"]|\b(?:but|and|so|because|though|although|however|yet|then|cause|while|until"
                     r"|unless)\b")
SENTENCE = (r"[.!?;:\n\"]")
FIRST = {"i", "me", "my", "myself", "mine"}
THIRD = {"he", "she", "they", "we", "you", "someone", "somebody", "anyone", "anybody", "people", "who", "his", "her",
          "their", "him", "them", "friend", "brother", "sister", "mom", "mother", "dad", "father", "son", "daughter",
          "roommate", "partner", "boyfriend", "girlfriend", "husband", "wife", "student", "patient", "client",
          "character", "hero", "villain", "singer", "person", "kid", "child", "children", "teen", "teenager",
          "coworker", "colleague", "teacher", "parent", "cousin", "uncle", "aunt", "grandma", "grandpa", "baby", "dog",
          "cat", "author", "poet", "writer", "actor", "actress", "protagonist", "narrator", "man", "woman", "guy",
          "girl", "boy", "classmate", "neighbor", "emperor", "king", "queen", "sibling", "ex", "doctor", "therapist",
          "nurse", "men", "women", "family", "relative", "pet"}
PRONOUNS = {"he", "she", "they", "we", "you", "someone", "somebody", "anyone", "anybody", "people", "who", "him",
             "them"}
FUNCTION_WORDS = {"is", "was", "are", "were", "has", "had", "have", "does", "did", "do", "will", "would", "can",
                   "could", "might", "may", "should", "must", "say", "told", "said", "keep", "kept", "who", "that",
                   "about", "with", "and", "or", "but", "if", "to", "of", "in", "on", "at", "for", "from", "just",
                   "really", "also", "always", "never", "not", "often", "sometimes", "seem", "started", "been",
                   "being", "once", "still", "even", "tried", "want", "think", "feel", "tell", "texted", "posted"}
DISTANT = (r"\b(?:years? ago|used to|as a (?:little )?(?:teen|teenager|kid|child|girl|boy)"
                      r"|when i was (?:younger|a (?:kid|teen|teenager|child)|in (?:high |middle )?school|little|\d+)"
                      r"|in (?:high|middle)"
                      r" school|in the past|back then|long time ago|(?<!since )last year"
                      r"|have not (?:acted on (?:it|them)|done it|hurt myself|cut|self harmed) (?:\w+ ){0,3}?(?:in|for"
                      r"|since) (?:\w+ ){0,2}?(?:days|weeks|months|years)|in my (?:teens|twenties|youth)|years back"
                      r"|(?:clean|free|sober) (?:for|since)"
                      r"|\w+ (?:days?|weeks?|months?|years?) (?:self harm |sh |cutting |suicide attempt )?"
                      r"(?:clean|free)"
                      r"|(?:am|feel) (?:okay|ok|fine|better|good|safe|doing (?:much |a lot )?better|in a (?:good"
                      r"|better) place) now|now i am (?:doing )?(?:okay|ok|fine|better|good|safe|much better))\b")
CURRENT = (r"\b(?:again|relaps\w*|tonight|right now|today|lately|these days|this week|currently"
                      r"|urges?)\b")
# a recovery milestone outweighs "today" or "urges" ("one year clean from self harm today"), never a relapse
RECOVERY = (r"\b(?:it gets better|(?:happy|grateful|glad|thankful|proud)\b[^.!?]{0,40}\bi am still"
                       r" (?:here|alive)|(?:please )?hold on,? (?:friends|everyone|everybody|guys|folks"
                       r"|to hope)|(?:so )?glad i (?:stayed|am (?:still )?(?:here|alive))"
                       r"|proud of (?:myself|me|how far)"
                       r"|\w+ (?:days?|weeks?|months?|years?) (?:self harm |sh |cutting )?(?:clean|free|sober)"
                       r"|clean (?:from|of|for|since)|in recovery|recovered|survivor|thriving"
                       r"|have not acted on (?:it|them)|(?:doing|feel|feeling) (?:so |much |a lot )?better now"
                       r"|i am (?:okay|ok|fine|happy|safe|well) now)\b")
RELAPSE = (r"\b(?:again|relaps\w*|slipped|back to)\b")
ANCHOR = (r"\b(?:i|me|my|myself|again|relaps\w*|tonight|right now|today|lately|urges?)\b")
OTHERS_AFTER = (r" (?:\w+ ){0,2}(?:in|among|of|for|with|by) (?:my |the |young |their |our )?(?:\w+ )?"
                           r"(?:teens|teenagers|students|kids|children|people|patients|clients|adolescents|youth|men"
                           r"|women|adults|friends?|son|daughter|brother|sister|partner|child)\b")  # "urges in teens"
META = (r"\bwhat (?:does|do|is|are) (?!it\b|this\b|that\b|he\b|she\b|they\b)\"?(?:\w+ ){0,2}\w+\"? (?:mean"
                   r"|means|stand for)\b|\bmeaning of\b|\bwhat is the definition of\b|\bdefine\b")
FICTION = (r"\b(?:in (?:the|my|a|this|that|his|her) (?:book|novel|movie|film|show|series|song|story|game"
                      r"|poem|play|episode|comic|manga|anime|fanfic|script|lyrics|video game)|the (?:main )?character"
                      r"|my (?:d&d|dnd|rpg|oc) character|chapter \d+|fanfic|fan fiction|documentary|podcast"
                      r"|history class|my (?:novel|story|screenplay|poem)|the villain|the protagonist|the narrator"
                      r"|the lyrics|(?:song|album|book|film|movie|poem|show|track|series)s? (?:called|titled|named))\b")
INFO_TOPIC = (r"\b(?:suicid\w*|self harm\w*|self injur\w*|cutting|(?:kill|killing|hurt|hurting|cutting)"
                         r" (?:him|her|them|your|my)sel(?:f|ves)|kill themself|want(?:s|ing|ed)? to die|end(?:ing)?"
                         r" (?:his|her|their|your|my) (?:own )?life|overdos\w*|took (?:his|her|their) own life"
                         r"|crisis (?:line|hotline|text line)|hotline)\b")
INFO_ASK = (r"\?|^(?:what|how|why|is|are|can|could|should|where|when|who|which|does|do|will|would|tell me"
                       r"|explain|any (?:tips|advice)|advice|ways to|help me understand)\b|\b(?:what (?:should|do|can"
                       r"|could) i (?:do|say|tell)|how (?:do|can|should|could) i (?:help|support|talk|approach|tell"
                       r"|deal|cope|respond|explain|report|know|find)|i am worried|worried (?:about|that)|i do not know"
                       r" (?:what|how) to (?:say|do|help|respond|react)|should i tell|(?:can|could) you recommend"
                       r"|i want to (?:learn|understand|know) (?:about|how|more)|(?:said|says|told me|texted|keeps"
                       r" saying|mentioned|posted) )")
